"""One idempotent bulk upsert for every table, on MySQL/MariaDB, PostgreSQL and SQLite.

Rows are classified against what the table already holds (inside the same transaction), so the
result says exactly how many were inserted, updated or left unchanged, and unchanged rows are not
written at all. The whole call is one transaction unless the caller passes its own connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Table, select, tuple_
from sqlalchemy.dialects import mysql, postgresql, sqlite

OnConflict = Literal["update", "ignore"]


@dataclass
class UpsertResult:
    """What an upsert did. `duplicates` counts input rows superseded by a later row with the same key."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    written: int = field(default=0, repr=False)

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            self.duplicates + other.duplicates,
            self.written + other.written,
        )

    def as_metadata(self) -> dict[str, int]:
        return {"inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged}


def _normalize(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        return value.normalize() if value else Decimal(0)
    return value


def _same(stored: Any, given: Any) -> bool:
    if stored is None or given is None:
        return stored is None and given is None
    if isinstance(stored, Decimal) or isinstance(given, Decimal):
        try:
            return Decimal(str(stored)) == Decimal(str(given))
        except ArithmeticError:
            return False
    return _normalize(stored) == _normalize(given)


def _statement(
    conn: Connection,
    table: Table,
    key: Sequence[str],
    columns: Sequence[str],
    on_conflict: OnConflict,
):
    dialect = conn.dialect.name
    non_key = [c for c in columns if c not in key]
    if dialect in ("mysql", "mariadb"):
        stmt = mysql.insert(table)
        if on_conflict == "ignore" or not non_key:
            # INSERT IGNORE would also swallow data errors; a no-op update ignores duplicates only.
            return stmt.on_duplicate_key_update({key[0]: table.c[key[0]]})
        return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in non_key})
    if dialect in ("postgresql", "sqlite"):
        stmt = (postgresql if dialect == "postgresql" else sqlite).insert(table)
        if on_conflict == "ignore" or not non_key:
            return stmt.on_conflict_do_nothing(index_elements=list(key))
        return stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: stmt.excluded[c] for c in non_key}
        )
    raise NotImplementedError(f"upsert does not support the {dialect} dialect")


def _existing(
    conn: Connection, table: Table, key: Sequence[str], columns: Sequence[str], keys: list[tuple]
):
    key_cols = [table.c[k] for k in key]
    query = select(*(table.c[c] for c in columns))
    if len(key_cols) == 1:
        query = query.where(key_cols[0].in_([k[0] for k in keys]))
    else:
        query = query.where(tuple_(*key_cols).in_(keys))
    found = {}
    for row in conn.execute(query).mappings():
        found[tuple(_normalize(row[k]) for k in key)] = row
    return found


def _upsert_batch(conn, table, key, columns, batch, on_conflict, classify) -> UpsertResult:
    result = UpsertResult()
    if not classify:
        conn.execute(_statement(conn, table, key, columns, on_conflict), batch)
        result.written = len(batch)
        return result
    keys = [tuple(_normalize(row[k]) for k in key) for row in batch]
    existing = _existing(conn, table, key, columns, keys)
    to_write = []
    for row_key, row in zip(keys, batch, strict=True):
        stored = existing.get(row_key)
        if stored is None:
            result.inserted += 1
            to_write.append(row)
        elif on_conflict == "ignore" or all(_same(stored[c], row[c]) for c in columns):
            result.unchanged += 1
        else:
            result.updated += 1
            to_write.append(row)
    if to_write:
        conn.execute(_statement(conn, table, key, columns, on_conflict), to_write)
        result.written = len(to_write)
    return result


def upsert(
    target: Engine | Connection,
    table: Table,
    rows: Iterable[Mapping[str, Any]],
    *,
    key: Sequence[str] | None = None,
    batch_size: int = 1000,
    on_conflict: OnConflict = "update",
    classify: bool = True,
) -> UpsertResult:
    """Insert or update `rows` into `table` by natural key (default: its primary key).

    - `on_conflict="ignore"` keeps existing rows as they are (immutable facts such as trades).
    - `classify=False` skips the read that counts inserted/updated/unchanged (hot paths); the
      result then only has `written`.
    All rows must carry the same columns. Given an Engine, the call is one transaction: an error
    leaves nothing of it. Given a Connection, it joins the caller's transaction.
    """
    key = list(key or (c.name for c in table.primary_key.columns))
    deduped: dict[tuple, Mapping[str, Any]] = {}
    count = 0
    for row in rows:
        count += 1
        deduped[tuple(_normalize(row[k]) for k in key)] = row
    result = UpsertResult(duplicates=count - len(deduped))
    if not deduped:
        return result
    batch_rows = list(deduped.values())
    columns = list(batch_rows[0].keys())
    unknown = [c for c in columns if c not in table.c]
    if unknown:
        raise ValueError(f"{table.name}: unknown columns {unknown}")
    for row in batch_rows:
        if row.keys() != batch_rows[0].keys():
            raise ValueError(
                f"{table.name}: every row must have the columns {columns}, got {list(row)}"
            )

    def run(conn: Connection) -> UpsertResult:
        total = result
        for start in range(0, len(batch_rows), batch_size):
            batch = [dict(r) for r in batch_rows[start : start + batch_size]]
            total = total + _upsert_batch(conn, table, key, columns, batch, on_conflict, classify)
        return total

    if isinstance(target, Engine):
        with target.begin() as conn:
            return run(conn)
    return run(target)
