"""Differences between a migrated database and the one schema declaration
(`storage.tables.full_metadata()`): what `ingest db check` and the drift tests report.

Alembic's autogenerate comparison (with this project's rules, `storage.schema_rules`) covers
tables, columns, types, nullability, indexes, unique constraints and server defaults. It does not
look at primary keys, computed columns or table character sets, so those are compared here too.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData, inspect, text

from ingestion_pipelines.storage.pool import MYSQL_CHARSET, get_engine
from ingestion_pipelines.storage.schema_rules import autogenerate_options
from ingestion_pipelines.storage.tables import full_metadata


def _describe(diff: Any) -> str:
    """One autogenerate difference as a line: `('add_column', None, 'fund', Column(...))`
    becomes `add_column fund.code: ...`; lists (a column's several changes) are joined."""
    if isinstance(diff, list):
        return "; ".join(_describe(item) for item in diff)
    kind, *rest = diff
    shown = [repr(item) for item in rest if item is not None and not isinstance(item, dict)]
    return " ".join([kind, *shown])


def _primary_key_differences(conn: Connection, metadata: MetaData) -> list[str]:
    inspector = inspect(conn)
    found = set(inspector.get_table_names())
    differences = []
    for name, table in metadata.tables.items():
        if name not in found:
            continue  # reported by autogenerate as a table to add
        stored = inspector.get_pk_constraint(name)["constrained_columns"]
        declared = [column.name for column in table.primary_key.columns]
        if stored != declared:
            differences.append(f"primary key of {name}: database {stored}, metadata {declared}")
    return differences


def _computed_differences(conn: Connection, metadata: MetaData) -> list[str]:
    inspector = inspect(conn)
    found = set(inspector.get_table_names())
    differences = []
    for name, table in metadata.tables.items():
        if name not in found:
            continue
        stored = {c["name"]: c.get("computed") for c in inspector.get_columns(name)}
        for column in table.columns:
            if column.name in stored and (column.computed is None) != (stored[column.name] is None):
                declared = "computed" if column.computed is not None else "stored"
                differences.append(f"{name}.{column.name}: declared {declared}, database differs")
    return differences


def _charset_differences(conn: Connection, metadata: MetaData) -> list[str]:
    """MySQL/MariaDB tables not in utf8mb4 (Vietnamese text would fail with error 1366)."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return []
    rows = conn.execute(
        text(
            # a collation's name starts with its charset (utf8mb4_general_ci, latin1_swedish_ci)
            "SELECT TABLE_NAME, SUBSTRING_INDEX(TABLE_COLLATION, '_', 1) "
            "FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
        )
    ).all()
    return [
        f"table {name} is {charset}, not {MYSQL_CHARSET}"
        for name, charset in rows
        if name in metadata.tables and charset != MYSQL_CHARSET
    ]


def differences(conn: Connection, metadata: MetaData) -> list[str]:
    """Every difference between the database `conn` is connected to and `metadata`, one line
    each (empty: the database is exactly what the metadata declares)."""
    context = MigrationContext.configure(conn, opts=autogenerate_options(metadata))
    found = [_describe(diff) for diff in compare_metadata(context, metadata)]
    found += _primary_key_differences(conn, metadata)
    found += _computed_differences(conn, metadata)
    found += _charset_differences(conn, metadata)
    return found


def schema_drift(url: str, metadata: MetaData | None = None) -> list[str]:
    """`differences` of the database at `url` from `metadata` (default: the full schema)."""
    metadata = full_metadata() if metadata is None else metadata
    with get_engine(url).connect() as conn:
        return differences(conn, metadata)
