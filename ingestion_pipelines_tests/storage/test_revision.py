"""`ingest db revision`: the migration generated for a column added to the declaration contains
that column in the project's types, upgrades SQLite, MariaDB and PostgreSQL to exactly the
declaration, and downgrades again. Revisions are written into a copy of the migrations folder."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, inspect

from ingestion_pipelines.cli import main as ingest
from ingestion_pipelines.storage import migrate, revision
from ingestion_pipelines.storage import schema_drift as schema_drift_module
from ingestion_pipelines.storage.migrate import MIGRATIONS_DIR, downgrade, head_revision, upgrade
from ingestion_pipelines.storage.pool import get_engine
from ingestion_pipelines.storage.revision import RevisionError, generate_revision
from ingestion_pipelines.storage.schema_drift import schema_drift
from ingestion_pipelines.storage.types import ExactDecimal, UtcDateTime
from ingestion_pipelines_tests.storage.schema_helpers import metadata_copy, migrations_copy

HEAD = head_revision()
HEAD_NUMBER = int(re.match(r"\d+", HEAD)[0])  # a named head (0016_vn_gold_fx) is 16
NEXT = f"{HEAD_NUMBER + 1:04d}"


def _with_new_columns() -> MetaData:
    """The declaration with three columns added to `fear_greed_index`."""
    changed = metadata_copy()
    table = changed.tables["fear_greed_index"]
    table.append_column(Column("note", String(64)))
    table.append_column(Column("value_exact", ExactDecimal))
    table.append_column(Column("published_at", UtcDateTime))
    return changed


def _with_changed_columns() -> MetaData:
    """Besides the new columns, a wider code, and an exact decimal and a time made nullable
    (their types must stay DECIMAL(38,18) and DATETIME(6) on MariaDB, though the database
    compared was SQLite, where they are VARCHAR(64) and DATETIME)."""
    changed = _with_new_columns()
    changed.tables["fund"].c.code.type = String(128)
    changed.tables["fund_nav"].c.nav.nullable = True
    changed.tables["trade_tick"].c.received_at.nullable = True
    return changed


def _package_versions() -> set[str]:
    return {p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py")}


def test_the_generated_revision_adds_the_column_and_leaves_no_drift(tmp_path, database_url):
    before = _package_versions()
    scripts = migrations_copy(tmp_path)
    changed = _with_changed_columns()
    path = generate_revision("fear_greed note", metadata=changed, script_location=scripts)

    assert path == scripts / "versions" / f"{NEXT}_fear_greed_note.py"
    source = path.read_text()
    assert f'revision = "{NEXT}"' in source and f'down_revision = "{HEAD}"' in source
    assert 'sa.Column("note", sa.String(length=64), nullable=True)' in source
    assert "ingestion_pipelines.storage.types.ExactDecimal(), nullable=True" in source
    assert "ingestion_pipelines.storage.types.UtcDateTime(), nullable=True" in source
    assert "existing_type=ingestion_pipelines.storage.types.ExactDecimal()" in source
    assert "existing_type=ingestion_pipelines.storage.types.UtcDateTime()" in source
    assert _package_versions() == before  # nothing written into the package

    assert upgrade(database_url, script_location=scripts) == NEXT
    assert schema_drift(database_url, changed) == []
    columns = {c["name"] for c in inspect(get_engine(database_url)).get_columns("fear_greed_index")}
    assert {"note", "value_exact", "published_at"} <= columns
    assert downgrade(database_url, HEAD, script_location=scripts) == HEAD
    assert schema_drift(database_url) == []


@pytest.mark.parametrize("server", ["mariadb_url", "postgres_url"])
def test_a_revision_generated_against_a_server_is_the_same(tmp_path, server, request):
    url = request.getfixturevalue(server)
    upgrade(url)
    scratch = migrations_copy(tmp_path / "scratch")
    against_server = migrations_copy(tmp_path / "server")
    changed = _with_changed_columns()
    a = generate_revision("note", metadata=changed, script_location=scratch)
    b = generate_revision(
        "note", metadata=changed, database_url=url, script_location=against_server
    )

    def body(path: Path) -> str:
        return re.sub(r"Create Date: .*\n", "", path.read_text())

    assert body(a) == body(b)


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is a dev dependency")
def test_the_generated_revision_passes_lint(tmp_path):
    scripts = migrations_copy(tmp_path)
    path = generate_revision("note", metadata=_with_new_columns(), script_location=scripts)
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, str(path)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_nothing_to_migrate_writes_nothing_unless_asked(tmp_path):
    scripts = migrations_copy(tmp_path)
    with pytest.raises(RevisionError, match="nothing to do"):
        generate_revision("nothing", script_location=scripts)
    assert sorted(p.name for p in (scripts / "versions").glob("*.py")) == sorted(
        _package_versions()
    )
    path = generate_revision("by hand", script_location=scripts, allow_empty=True)
    assert path.name == f"{NEXT}_by_hand.py"


def test_a_database_behind_head_is_refused(tmp_path, sqlite_url):
    upgrade(sqlite_url, "0006")
    with pytest.raises(RevisionError, match="not up to date"):
        generate_revision(
            "x",
            metadata=_with_new_columns(),
            database_url=sqlite_url,
            script_location=migrations_copy(tmp_path),
        )


def test_ingest_db_revision_writes_the_next_numbered_revision(
    tmp_path, monkeypatch, capsys, sqlite_url
):
    scripts = migrations_copy(tmp_path)
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", scripts)
    changed = _with_new_columns()
    monkeypatch.setattr(revision, "full_metadata", lambda: changed)
    monkeypatch.setattr(schema_drift_module, "full_metadata", lambda: changed)

    assert ingest(["db", "revision", "-m", "fear greed note"]) == 0
    first = scripts / "versions" / f"{NEXT}_fear_greed_note.py"
    assert str(first) in capsys.readouterr().out
    assert 'sa.Column("note"' in first.read_text()
    # the operator's path: upgrade, then nothing differs from the declaration
    assert ingest(["db", "upgrade", "--database-url", sqlite_url]) == 0
    assert ingest(["db", "check", "--database-url", sqlite_url]) == 0
    assert "0 difference(s)" in capsys.readouterr().out

    # declared and migrated: the next revision has nothing to do, unless asked for by hand
    assert ingest(["db", "revision", "-m", "again"]) == 1
    assert "nothing to do" in capsys.readouterr().err
    assert ingest(["db", "revision", "-m", "data fix", "--empty"]) == 0
    second = scripts / "versions" / f"{int(NEXT) + 1:04d}_data_fix.py"
    assert f'down_revision = "{NEXT}"' in second.read_text()
