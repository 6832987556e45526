"""`ingest db revision`: a migration generated from the one schema declaration.

Alembic's autogenerate compares a database migrated to the newest revision with
`storage.tables.full_metadata()` (under this project's rules, `storage.schema_rules`) and writes
what differs as the next revision (`0009_<slug>.py`, down_revision the current head) into the
migrations folder. Without env.py, like `storage.migrate`: the autogenerate run is given its
connection and options here.

The database compared is, by default, a new SQLite file migrated to head (what the revisions
produce, whatever state a developer's own database is in); `database_url` compares a server
instead (a type difference only MariaDB shows, such as a DATETIME losing its microseconds).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic.autogenerate import RevisionContext
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Column, MetaData
from sqlalchemy.types import TypeEngine

from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.storage.migrate import script_config, upgrade
from ingestion_pipelines.storage.pool import get_engine
from ingestion_pipelines.storage.schema_rules import autogenerate_options, portable_type
from ingestion_pipelines.storage.tables import full_metadata

_NUMBER = re.compile(r"\d+")


class RevisionError(IngestError):
    """A migration could not be generated (database not at head, several heads, no change)."""


def next_revision_id(script: ScriptDirectory) -> str:
    """The number after the highest numbered revision, four digits (`0008` -> `0009`; a named
    one such as `0016_vn_gold_fx` counts as 16)."""
    numbers = [int(m[0]) for rev in script.walk_revisions() if (m := _NUMBER.match(rev.revision))]
    return f"{max(numbers, default=0) + 1:04d}"


def _operations(container: ops.OpContainer) -> Iterator[ops.MigrateOperation]:
    for operation in container.ops:
        if isinstance(operation, ops.OpContainer):
            yield from _operations(operation)
        else:
            yield operation


def _declared_type(metadata: MetaData, table: str, column: str) -> TypeEngine | None:
    declared = metadata.tables.get(table)
    return None if declared is None or column not in declared.c else declared.c[column].type


def _make_portable(script: ops.MigrationScript, metadata: MetaData, dialect: Any) -> None:
    """Types in the generated operations that come from the compared database (a column's
    `existing_type`, a dropped column or table re-created by the downgrade) are that database's
    spelling: VARCHAR(64) for an `ExactDecimal` on SQLite would turn the column into text on
    MariaDB. They become the declared type where the column's type does not change, else the
    portable type (`schema_rules.portable_type`)."""
    for container in (*script.upgrade_ops_list, *script.downgrade_ops_list):
        for operation in _operations(container):
            if isinstance(operation, ops.AlterColumnOp):
                declared = _declared_type(metadata, operation.table_name, operation.column_name)
                if operation.modify_type is None and declared is not None:
                    operation.existing_type = declared
                for attribute in ("existing_type", "modify_type"):
                    value = getattr(operation, attribute)
                    if value is not None:
                        setattr(operation, attribute, portable_type(value, dialect))
            columns = []
            if isinstance(operation, ops.AddColumnOp):
                columns = [operation.column]
            elif isinstance(operation, ops.CreateTableOp):
                columns = [c for c in operation.columns if isinstance(c, Column)]
            for column in columns:
                column.type = portable_type(column.type, dialect)


def _autogenerate(context: RevisionContext, url: str, metadata: MetaData) -> None:
    with get_engine(url).connect() as conn:
        migration_context = MigrationContext.configure(conn, opts=autogenerate_options(metadata))
        heads = migration_context.get_current_heads()
        try:
            context.run_autogenerate(heads, migration_context)
        except CommandError as exc:  # "Target database is not up to date."
            raise RevisionError(f"cannot generate a revision: {exc}") from exc
        for script in context.generated_revisions:
            _make_portable(script, metadata, conn.dialect)


def _tidy(path: Path) -> None:
    """Write the file as `make lint` wants it (imports the operations need, ruff's format), when
    ruff is installed (a development checkout); the file runs the same either way."""
    if importlib.util.find_spec("ruff") is None:
        return
    ruff = [sys.executable, "-m", "ruff"]
    subprocess.run([*ruff, "check", "--fix", "--select", "F401,I001", "-q", str(path)], check=False)
    subprocess.run([*ruff, "format", "-q", str(path)], check=False)


def generate_revision(
    message: str,
    *,
    metadata: MetaData | None = None,
    database_url: str | None = None,
    script_location: Path | None = None,
    allow_empty: bool = False,
) -> Path:
    """Write the migration that brings a database at head to `metadata` (default: the full
    schema) as the next numbered revision; returns its path.

    Refuses (RevisionError) when there is nothing to migrate, unless `allow_empty` (a revision
    to fill by hand, e.g. a data migration).
    """
    metadata = full_metadata() if metadata is None else metadata
    config = script_config(script_location)
    script = ScriptDirectory.from_config(config)
    if len(script.get_heads()) > 1:
        raise RevisionError(f"several heads {script.get_heads()}: merge them first")
    rev_id = next_revision_id(script)
    context = RevisionContext(
        config,
        script,
        {
            "message": message,
            "autogenerate": True,
            "sql": False,
            "head": "head",
            "splice": False,
            "branch_label": None,
            "version_path": None,
            "rev_id": rev_id,
            "depends_on": None,
        },
    )
    with tempfile.TemporaryDirectory(prefix="ingest-revision-") as scratch:
        url = database_url or f"sqlite:///{Path(scratch) / 'head.db'}"
        if database_url is None:
            upgrade(url, script_location=script_location)
        try:
            _autogenerate(context, url, metadata)
        finally:
            if database_url is None:
                get_engine(url).dispose()
    (planned,) = context.generated_revisions
    if not allow_empty and all(ops.is_empty() for ops in planned.upgrade_ops_list):
        raise RevisionError("no difference between the migrations and the metadata: nothing to do")
    (generated,) = context.generate_scripts()
    path = Path(generated.path)
    _tidy(path)
    return path
