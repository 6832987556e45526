"""Item 8: utf8mb4 explicitly on MySQL/MariaDB tables and connections, on a server whose
default charset is latin1."""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy import select, text

from ingestion_pipelines.storage.engines import dispose_all, ensure_schema, get_engine
from ingestion_pipelines.storage.migrate import upgrade
from ingestion_pipelines.storage.tables import fund
from ingestion_pipelines.storage.upsert import upsert
from ingestion_pipelines_tests.testbed.mariadb import MariaDBServer

NAME = "Quỹ Đầu tư Cổ phiếu Năng động Việt Nam — 越南 🚀"


class Latin1MariaDB(MariaDBServer):
    """The test bed's MariaDB with a latin1 server default (as an old or distro default)."""

    def _write_config(self) -> None:
        super()._write_config()
        config = self.defaults_file.read_text()
        config = config.replace("character-set-server = utf8mb4", "character-set-server = latin1")
        config = config.replace(
            "collation-server = utf8mb4_general_ci", "collation-server = latin1_swedish_ci"
        )
        assert "latin1_swedish_ci" in config
        # its own temporary folder: two servers sharing /tmp collide on temporary table names
        private_tmp = self.tmpdir / "tmp"
        private_tmp.mkdir(exist_ok=True)
        self.defaults_file.write_text(f"{config}tmpdir = {private_tmp}\n")


@pytest.fixture(scope="module")
def latin1_server():
    server = Latin1MariaDB()
    try:
        server.start()
        yield server
    finally:
        dispose_all()
        server.close()


@pytest.fixture
def latin1_url(latin1_server, request):
    name = latin1_server.create_database(f"t_charset_{request.node.name[-20:].lower()}")
    # no ?charset= in the URL: the process must ask for utf8mb4 itself
    yield latin1_server.url(name).split("?", 1)[0]
    dispose_all()
    with contextlib.suppress(Exception):
        latin1_server.drop_database(name)


def _fund_row() -> dict:
    return {"fund_id": 1, "code": "VNDAF", "name": NAME, "asset_type": "STOCK", "issuer": NAME}


def _charsets(url: str) -> dict[str, str]:
    with get_engine(url).connect() as conn:
        rows = conn.execute(
            text(
                "SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE()"
            )
        )
        return {name: collation.split("_", 1)[0] for name, collation in rows}


def _assert_latin1_server(url: str) -> None:
    with get_engine(url).connect() as conn:
        assert conn.execute(text("SELECT @@character_set_server")).scalar() == "latin1"
        assert conn.execute(text("SELECT @@character_set_client")).scalar() == "utf8mb4"


def test_new_tables_on_a_latin1_server_store_vietnamese(latin1_url):
    _assert_latin1_server(latin1_url)
    engine = ensure_schema(latin1_url)
    assert set(_charsets(latin1_url).values()) == {"utf8mb4"}
    upsert(engine, fund, [_fund_row()])
    with engine.connect() as conn:
        assert conn.execute(select(fund.c.name)).scalar_one() == NAME


def test_existing_latin1_tables_are_converted(latin1_url):
    upgrade(latin1_url, "0002")  # tables as the first revisions made them on this server
    assert _charsets(latin1_url)["fund"] == "latin1"
    engine = get_engine(latin1_url)
    with engine.begin() as conn:
        conn.execute(fund.insert().values(fund_id=2, code="OLD", name="old latin1 row"))
    upgrade(latin1_url)
    assert set(_charsets(latin1_url).values()) == {"utf8mb4"}
    upsert(engine, fund, [_fund_row()])
    with engine.connect() as conn:
        names = dict(conn.execute(select(fund.c.fund_id, fund.c.name)).all())
    assert names == {1: NAME, 2: "old latin1 row"}
