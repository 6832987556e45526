"""The "add a source" recipe, followed literally in a copy of the code: a YAML source's folder
copied under a new name, its worker id and table renamed inside, and nothing else touched, is a
working source: in the catalogue (`ingest workers`), served by the replay, given its table, and
passing the standard tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL, COPY = "coingecko_markets", "coingecko_markets_copy"
TABLE, COPY_TABLE = "crypto_market_snapshot", "crypto_market_snapshot_copy"


@pytest.fixture(scope="module")
def copied(tmp_path_factory) -> Path:
    """A copy of the code with `defs/coingecko_markets/` copied as `defs/<COPY>/`."""
    root = tmp_path_factory.mktemp("copy")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("ingestion_pipelines", "ingestion_pipelines_tests"):
        shutil.copytree(ROOT / package, root / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", root)
    defs = root / "ingestion_pipelines" / "defs"
    shutil.copytree(defs / ORIGINAL, defs / COPY)
    declaration = defs / COPY / "defs.yaml"
    text = declaration.read_text()
    declaration.write_text(
        text.replace(f"worker_id: {ORIGINAL}", f"worker_id: {COPY}").replace(
            f"name: {TABLE}", f"name: {COPY_TABLE}"
        )
    )
    return root


def run(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        args, cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_the_copy_is_in_the_catalogue_the_tables_and_the_replay(copied):
    script = textwrap.dedent(
        f"""
        import contextlib, io, json, urllib.request
        import ingestion_pipelines
        from ingestion_pipelines.cli import main
        from ingestion_pipelines.replay.http_server import ReplayServer
        from ingestion_pipelines.storage import tables
        assert ingestion_pipelines.__file__.startswith({str(copied)!r}), ingestion_pipelines.__file__
        with contextlib.redirect_stdout(io.StringIO()) as listed:
            main(["workers", "--json"])
        print(json.dumps(json.loads(listed.getvalue())))
        print(json.dumps(sorted(tables.DATA_TABLES)))
        with ReplayServer() as server:
            url = server.env()["INGEST_{COPY.upper()}__BASE_URL"]
            page = url + "/coins/markets?vs_currency=usd&per_page=5&page=1"
            print(json.dumps(json.load(urllib.request.urlopen(page))))
        """
    )
    out = run(copied, sys.executable, "-c", script)
    assert out.returncode == 0, out.stderr[-3000:]
    workers, data_tables, page = out.stdout.strip().splitlines()[-3:]
    assert {"worker_id": COPY, "kind": "scheduled"} in json.loads(workers)
    assert {TABLE, COPY_TABLE} <= set(json.loads(data_tables))
    assert [coin["id"] for coin in json.loads(page)][:2] == ["bitcoin", "ethereum"]


# What `ingest db revision -m "..."` does (Alembic's autogenerate against the one metadata);
# written here with Alembic's API until that command lands, so the copy gets its migration.
REVISION = textwrap.dedent(
    """
    import tempfile
    from pathlib import Path
    from alembic.autogenerate import produce_migrations, render_python_code
    from alembic.migration import MigrationContext
    from ingestion_pipelines.storage import migrate
    from ingestion_pipelines.storage.pool import get_engine
    from ingestion_pipelines.storage.tables import metadata

    url = f"sqlite:///{tempfile.mkdtemp()}/head.db"
    head = migrate.upgrade(url)
    with get_engine(url).connect() as conn:
        ops = produce_migrations(MigrationContext.configure(conn), metadata)
    code = render_python_code(ops.upgrade_ops, migration_context=None)
    Path(migrate.MIGRATIONS_DIR, "versions", "9999_copy.py").write_text(
        f"import sqlalchemy as sa\\nfrom ingestion_pipelines.storage.migration_ops import op\\n"
        f"import ingestion_pipelines.storage.types\\n\\n"
        f"revision = '9999'\\ndown_revision = {head!r}\\n\\n\\ndef upgrade():\\n{code}\\n"
    )
    print(code)
    """
)


@pytest.mark.slow
def test_the_copy_passes_the_standard_tests(copied):
    revision = run(copied, sys.executable, "-c", REVISION)
    assert revision.returncode == 0, revision.stderr[-3000:]
    assert f"op.create_table('{COPY_TABLE}'" in revision.stdout
    tests = copied / "ingestion_pipelines_tests" / "sources" / "test_standard.py"
    out = run(
        copied,
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(tests),
        "-k",
        COPY,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    assert "3 passed" in out.stdout
