"""The test bed itself: real servers, real connections, real outages."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ingestion_pipelines.core.settings import get_settings, local_data_dir
from ingestion_pipelines_tests.testbed import base as testbed
from ingestion_pipelines_tests.testbed.base import MissingBinaryError
from ingestion_pipelines_tests.testbed.mariadb import MariaDBServer
from ingestion_pipelines_tests.testbed.postgres import PostgresServer
from ingestion_pipelines_tests.testbed.redis import RedisServer

REPO_ROOT = Path(__file__).resolve().parents[1]

# 20 integer digits + 18 decimals: the full DECIMAL(38,18) range, beyond a float's precision
BIG = Decimal("12345678901234567890.123456789012345678")
TINY = Decimal("-0.000000000000000001")
WHEN = datetime(2024, 2, 29, 23, 59, 59, 999999)
WHEN2 = datetime(1999, 12, 31, 0, 0, 0, 1)


def _roundtrip(url: str, timestamp_type: str) -> list[sa.Row]:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE TABLE prices (id INTEGER PRIMARY KEY, "
                    f"amount DECIMAL(38,18) NOT NULL, at {timestamp_type} NOT NULL)"
                )
            )
            conn.execute(
                sa.text("INSERT INTO prices (id, amount, at) VALUES (:id, :amount, :at)"),
                [{"id": 1, "amount": BIG, "at": WHEN}, {"id": 2, "amount": TINY, "at": WHEN2}],
            )
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT id, amount, at FROM prices ORDER BY id")))
    finally:
        engine.dispose()


def _assert_exact(rows: list[sa.Row]) -> None:
    assert [tuple(r) for r in rows] == [(1, BIG, WHEN), (2, TINY, WHEN2)]
    assert isinstance(rows[0].amount, Decimal)
    assert str(rows[0].amount) == "12345678901234567890.123456789012345678"
    assert rows[0].at.microsecond == 999999


def _count(url: str, table: str = "prices") -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
    finally:
        engine.dispose()


def _url_with_password(url: str, password: str) -> str:
    return make_url(url).set(password=password).render_as_string(hide_password=False)


# ----------------------------------------------------------------------------- MariaDB


def test_mariadb_tcp_password_roundtrip_is_exact(mariadb_url: str) -> None:
    _assert_exact(_roundtrip(mariadb_url, "DATETIME(6)"))

    engine = sa.create_engine(mariadb_url)
    with engine.connect() as conn:
        user, host, charset = conn.execute(
            sa.text(
                "SELECT CURRENT_USER(), HOST, @@character_set_server "
                "FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()"
            )
        ).one()
        assert conn.dialect.is_mariadb  # type: ignore[attr-defined]
    engine.dispose()
    assert user == "ingest@%"
    assert host.startswith("127.0.0.1:")  # TCP, not the unix socket
    assert charset == "utf8mb4"

    bad = sa.create_engine(_url_with_password(mariadb_url, "wrong"))
    with pytest.raises(sa.exc.OperationalError, match="1045"):  # access denied
        bad.connect()
    bad.dispose()


def test_mariadb_kill_then_start_keeps_the_data(
    mariadb_server: MariaDBServer, mariadb_url: str
) -> None:
    _roundtrip(mariadb_url, "DATETIME(6)")
    engine = sa.create_engine(mariadb_url, pool_pre_ping=True)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM prices")).scalar_one() == 2
    port, pid = mariadb_server.port, mariadb_server.pid

    mariadb_server.kill()
    assert not mariadb_server.is_running
    assert not testbed.pid_alive(pid)  # type: ignore[arg-type]
    with pytest.raises(sa.exc.OperationalError, match="2003|2013"):  # outage: can't connect
        engine.connect()

    mariadb_server.start()
    assert (mariadb_server.port, mariadb_server.is_running) == (port, True)
    assert mariadb_server.pid != pid
    with engine.connect() as conn:  # the same engine recovers (pre-ping drops dead ones)
        rows = list(conn.execute(sa.text("SELECT id, amount, at FROM prices ORDER BY id")))
    _assert_exact(rows)

    mariadb_server.restart()  # clean stop + start
    assert mariadb_server.port == port
    assert _count(mariadb_url) == 2
    engine.dispose()


_SEEN_MARIADB_DATABASES: list[str] = []


@pytest.mark.parametrize("round_", [1, 2])
def test_each_test_gets_its_own_empty_mariadb_database(
    mariadb_server: MariaDBServer, mariadb_url: str, round_: int
) -> None:
    name = make_url(mariadb_url).database
    assert name
    engine = sa.create_engine(mariadb_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE marker (id INT PRIMARY KEY)"))
        with engine.connect() as conn:
            databases = set(conn.execute(sa.text("SHOW DATABASES")).scalars())
    finally:
        engine.dispose()
    for previous in _SEEN_MARIADB_DATABASES:
        assert previous != name
        assert previous not in databases  # dropped after its test
    if round_ == 2:
        assert len(_SEEN_MARIADB_DATABASES) == 1  # round 1 ran in this session
    _SEEN_MARIADB_DATABASES.append(name)


# ----------------------------------------------------------------------------- PostgreSQL


def test_postgres_tcp_password_roundtrip_is_exact(postgres_url: str) -> None:
    _assert_exact(_roundtrip(postgres_url, "TIMESTAMP(6)"))

    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        user, address, tz = conn.execute(
            sa.text("SELECT current_user, inet_server_addr()::text, current_setting('TimeZone')")
        ).one()
    engine.dispose()
    assert user == "ingest"
    assert address.startswith("127.0.0.1")  # TCP
    assert tz == "UTC"

    bad = sa.create_engine(_url_with_password(postgres_url, "wrong"))
    with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
        bad.connect()
    bad.dispose()


def test_postgres_kill_then_start_keeps_the_data(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    _roundtrip(postgres_url, "TIMESTAMP(6)")
    port = postgres_server.port

    postgres_server.kill()
    assert not postgres_server.is_running
    engine = sa.create_engine(postgres_url)
    with pytest.raises(sa.exc.OperationalError):
        engine.connect()

    postgres_server.start()
    assert postgres_server.port == port
    # no shutdown checkpoint was written: the restart had to replay the WAL
    assert "automatic recovery in progress" in postgres_server.log_tail(200)
    with engine.connect() as conn:
        rows = list(conn.execute(sa.text("SELECT id, amount, at FROM prices ORDER BY id")))
    _assert_exact(rows)
    engine.dispose()

    postgres_server.restart()
    assert _count(postgres_url) == 2


# ----------------------------------------------------------------------------- Redis


def test_redis_set_get(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.set("greeting", "xin chào")
    assert client.get("greeting") == "xin chào".encode()
    client.close()


def test_redis_url_leaves_data_behind(redis_url: str, redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_url)
    client.mset({"left:1": 1, "left:2": 2})
    other = redis_server.client(db=3)
    other.set("left:db3", 1)
    assert client.dbsize() == 2
    client.close()
    other.close()


def test_redis_url_starts_empty(redis_url: str, redis_server: RedisServer) -> None:
    # runs after test_redis_url_leaves_data_behind: every database was flushed in between
    client = redis.Redis.from_url(redis_url)
    other = redis_server.client(db=3)
    assert client.dbsize() == 0
    assert other.dbsize() == 0
    client.close()
    other.close()


def test_redis_kill_then_start(redis_server: RedisServer, redis_url: str) -> None:
    port = redis_server.port
    client = redis.Redis.from_url(redis_url)
    client.set("k", "v")
    redis_server.kill()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    redis_server.start()
    assert redis_server.port == port
    assert client.ping()  # redis-py reconnects
    assert client.get("k") is None  # no persistence: a restarted Redis is empty
    client.close()


# ----------------------------------------------------------------------------- fixtures


def test_database_url_covers_each_backend(
    database_url: str, request: pytest.FixtureRequest
) -> None:
    backend = request.node.callspec.id
    expected = {"sqlite": "sqlite", "mariadb": "mysql", "postgres": "postgresql"}
    engine = sa.create_engine(database_url)
    try:
        assert engine.dialect.name == expected[backend]
        assert sa.inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            conn.execute(sa.text("INSERT INTO t (id) VALUES (1)"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id FROM t")).scalar_one() == 1
    finally:
        engine.dispose()


def test_sqlite_url_is_in_tmp_path(sqlite_url: str, tmp_path: Path) -> None:
    assert sqlite_url == f"sqlite:///{tmp_path}/test.db"


_SEEN_LOCAL_DIRS: list[Path] = []


@pytest.mark.parametrize("round_", [1, 2])
def test_isolated_env(isolated_env: Path, tmp_path: Path, round_: int) -> None:
    assert [k for k in os.environ if k.startswith("INGEST_")] == ["INGEST_LOCAL_DIR"]
    assert local_data_dir() == isolated_env
    assert list(isolated_env.iterdir()) == []
    assert list(tmp_path.iterdir()) == []
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    assert dagster_home.is_dir() and list(dagster_home.iterdir()) == []
    assert REPO_ROOT not in isolated_env.parents and REPO_ROOT not in dagster_home.parents
    assert isolated_env not in _SEEN_LOCAL_DIRS  # one per test
    _SEEN_LOCAL_DIRS.append(isolated_env)
    (isolated_env / "leftover").write_text("x")
    settings = get_settings()
    assert settings.database_url == f"sqlite:///{isolated_env / 'ingest.db'}"
    assert settings.redis_url is None


def test_missing_binary_says_how_to_install() -> None:
    with pytest.raises(MissingBinaryError, match="make system-deps"):
        testbed.find_binary("surely-not-an-installed-binary", package="nothing")


# ----------------------------------------------------------------------------- no leaks


_CHILD = """
import sys, time
from ingestion_pipelines_tests.testbed.redis import RedisServer
server = RedisServer().start()
print(server.pid, server.tmpdir, flush=True)
if sys.argv[1] == "hang":
    time.sleep(120)
"""


def _start_child(mode: str) -> tuple[subprocess.Popen[str], int, Path]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, mode],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    assert child.stdout is not None
    pid, tmpdir = child.stdout.readline().split()
    return child, int(pid), Path(tmpdir)


def _wait_gone(pid: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while testbed.pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_servers_stop_when_the_test_process_exits() -> None:
    child, pid, tmpdir = _start_child("exit")
    assert child.wait(30) == 0
    assert _wait_gone(pid)  # atexit stopped it
    assert not tmpdir.exists()


def _set_child_subreaper(on: bool) -> None:
    """Orphans of our children are re-parented to us (so we can reap them), not to init."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, int(on), 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


@pytest.mark.skipif(testbed._SETPRIV is None, reason="needs util-linux setpriv (Linux)")
def test_servers_die_with_a_killed_test_process() -> None:
    _set_child_subreaper(True)  # until the orphaned server has been reaped
    try:
        child, pid, tmpdir = _start_child("hang")
        assert testbed.pid_alive(pid)
        child.send_signal(signal.SIGKILL)  # no atexit, no finally
        child.wait(30)
        try:
            assert _wait_gone(pid)  # the parent-death signal stopped it
            testbed.remove_stale_dirs(str(tmpdir.parent))  # what the next session does
            assert not tmpdir.exists()
        finally:
            if testbed.pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)  # reap the orphan, re-parented to us
    finally:
        _set_child_subreaper(False)
