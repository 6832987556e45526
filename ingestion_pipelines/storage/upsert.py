"""One idempotent bulk upsert for every table, on MySQL/MariaDB, PostgreSQL and SQLite.

Rows are classified against what the table already holds (inside the same transaction), so the
result says exactly how many were inserted, updated or left unchanged, and unchanged rows are not
written at all. The whole call is one transaction unless the caller passes its own connection.

`fast_upsert` is the hot path of the same statement (the sidecar's writer): no classification.
On MySQL/MariaDB both send the rows as SQL literals built here (`_row_literals`) and the
classifying read lists its keys the same way, skipping SQLAlchemy's and the driver's per-value
processing (a third of the cost of a backfill's batch otherwise); elsewhere, the driver's
executemany.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from operator import itemgetter
from typing import Any, Literal

from pymysql.cursors import RE_INSERT_VALUES
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    String,
    Table,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.types import TypeDecorator

from ingestion_pipelines.storage.types import ExactDecimal, JsonDocument, UtcDateTime, json_text

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
        """Rows written or compared: inserted + updated + unchanged."""
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
        """The counts as materialization metadata."""
        return {"inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged}


@dataclass(frozen=True)
class History:
    """Where an upsert keeps the version of each row it replaces: before an updated row is
    written, its stored values of the columns `table` shares with the upserted table go to
    `table` with `values` (constants such as the run id and the time), in the same transaction.
    A restated figure thus updates its row and the figure it replaced stays readable."""

    table: Table
    values: Mapping[str, Any] = field(default_factory=dict)

    def rows(self, stored: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The history rows of the stored versions about to be replaced."""
        if not stored:
            return []
        shared = [c for c in stored[0] if c in self.table.c and c not in self.values]
        return [{**{c: row[c] for c in shared}, **self.values} for row in stored]


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
) -> dict[tuple, Any]:
    key_cols = [table.c[k] for k in key]
    query = select(*(table.c[c] for c in columns))
    listed = _keys_in_literals(conn, table, key, keys)
    if listed is not None:
        query = query.where(listed)
    elif len(key_cols) == 1:
        query = query.where(key_cols[0].in_([k[0] for k in keys]))
    else:
        query = query.where(tuple_(*key_cols).in_(keys))
    found = {}
    # a query holding its keys as literals is never the same twice: not kept in the cache
    options = {"compiled_cache": None} if listed is not None else None
    for row in conn.execute(query, execution_options=options).mappings():
        found[tuple(_normalize(row[k]) for k in key)] = row
    return found


def _upsert_batch(
    conn, table, key, columns, batch, on_conflict, classify, history=None
) -> UpsertResult:
    result = UpsertResult()
    if not classify:
        _write(conn, table, key, columns, batch, on_conflict)
        result.written = len(batch)
        return result
    keys = [tuple(_normalize(row[k]) for k in key) for row in batch]
    existing = _existing(conn, table, key, columns, keys)
    to_write = []
    replaced = []
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
            replaced.append(stored)
    if history is not None and replaced:
        conn.execute(history.table.insert(), history.rows(replaced))
    if to_write:
        _write(conn, table, key, columns, to_write, on_conflict)
        result.written = len(to_write)
    return result


def _write(conn, table, key, columns, rows, on_conflict) -> None:
    """The batch's statement: as row literals on MySQL/MariaDB when every column can be written
    so (`_literal_statement`), else through the driver's executemany."""
    prepared = _literal_statement(conn, table, key, columns, on_conflict)
    if prepared is None:
        conn.execute(_statement(conn, table, key, columns, on_conflict), rows)
    else:
        _send_literals(
            conn, prepared, _row_literals(prepared, rows, conn.connection.dbapi_connection)
        )


def upsert(
    target: Engine | Connection,
    table: Table,
    rows: Iterable[Mapping[str, Any]],
    *,
    key: Sequence[str] | None = None,
    batch_size: int = 1000,
    on_conflict: OnConflict = "update",
    classify: bool = True,
    history: History | None = None,
) -> UpsertResult:
    """Insert or update `rows` into `table` by natural key (default: its primary key).

    - `on_conflict="ignore"` keeps existing rows as they are (immutable facts such as trades).
    - `classify=False` skips the read that counts inserted/updated/unchanged (hot paths); the
      result then only has `written`.
    - `history` keeps the stored version of every updated row in its table (`History`), in the
      same transaction; it needs the classification.
    All rows must carry the same columns. Given an Engine, the call is one transaction: an error
    leaves nothing of it. Given a Connection, it joins the caller's transaction.
    """
    if history is not None and not classify:
        raise ValueError(f"{table.name}: a history table needs classify=True")
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
            total = total + _upsert_batch(
                conn, table, key, columns, batch, on_conflict, classify, history
            )
        return total

    if isinstance(target, Engine):
        with target.begin() as conn:
            return run(conn)
    return run(target)


# One statement stays under this many characters (PyMySQL's own `executemany` limit).
_MAX_STATEMENT_CHARS = 1_024_000


@dataclass(frozen=True)
class _Prepared:
    prefix: str  # "INSERT INTO t (a, b) VALUES "
    postfix: str  # " ON DUPLICATE KEY UPDATE ..."
    values: Any  # itemgetter: row -> tuple in the statement's column order
    kinds: tuple[str, ...]  # per position: "time", "decimal", "json", "str", "int" or "other"
    names: tuple[str, ...]


_PREPARED: dict[tuple, _Prepared | None] = {}


def _kind(column_type: Any) -> str | None:
    """How the fast path writes a column's values; None: a type it leaves to SQLAlchemy."""
    if isinstance(column_type, UtcDateTime):
        return "time"
    if isinstance(column_type, ExactDecimal):
        return "decimal"
    if isinstance(column_type, JsonDocument):
        return "json"  # the text its bind processing would give (`json_text`), escaped
    if isinstance(column_type, TypeDecorator):
        return None  # its bind processing must run (JSON text, ...)
    if isinstance(column_type, String):
        return "str"
    if isinstance(column_type, Integer):
        return "int"
    return "other"


def _prepare(conn: Connection, table: Table, columns: tuple[str, ...], on_conflict):
    """The statement `upsert` builds for these columns, split around its VALUES row (None: a
    column type needs SQLAlchemy's bind processing)."""
    cache_key = (conn.dialect.name, table, columns, on_conflict)  # the table itself: names repeat
    if cache_key in _PREPARED:
        return _PREPARED[cache_key]
    key = [c.name for c in table.primary_key.columns]
    compiled = _statement(conn, table, key, columns, on_conflict).compile(
        dialect=mysql.dialect(paramstyle="format"), column_keys=list(columns)
    )
    names = tuple(compiled.positiontup)
    kinds = tuple(_kind(table.c[name].type) for name in names)
    prepared = None
    match = RE_INSERT_VALUES.match(str(compiled))
    if match is not None and None not in kinds:
        prepared = _Prepared(
            match.group(1),
            match.group(3),
            itemgetter(*names) if len(names) > 1 else (lambda row, n=names[0]: (row[n],)),
            kinds,  # type: ignore[arg-type]
            names,
        )
    _PREPARED[cache_key] = prepared
    return prepared


def _time_literal(value: Any, name: str) -> str:
    if type(value) is not datetime:
        if value is None:
            return "NULL"
        if not isinstance(value, datetime):
            raise TypeError(f"{name}: expected a datetime, got {type(value).__name__}")
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError(f"{name}: naive datetime {value!r}: give times with a timezone (UTC)")
        value = value.astimezone(UTC)
    return "'" + value.isoformat(" ")[:-6] + "'"  # without "+00:00"


def _decimal_literal(value: Any, name: str) -> str:
    if type(value) is not Decimal:
        if value is None:
            return "NULL"
        if isinstance(value, float):
            raise TypeError(f"float {value!r} given for the exact decimal {name}: pass Decimal")
        value = Decimal(value)
    if not value.is_finite():
        raise ValueError(f"{name}: {value} is not a finite number")
    return format(value, "f")


_SHORT_STRING = 32  # characters


def _plain_literal(value: Any, name: str, escape) -> str:
    """A value of a column with no special kind, written only for the types whose literal is
    known to be safe. Anything else is refused: the driver's generic encoder would quote it
    with backslashes, which a server in NO_BACKSLASH_ESCAPES mode does not read as escapes."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):
        return escape(str(value))  # quoted per the server's backslash mode
    if isinstance(value, Decimal):
        return _decimal_literal(value, name)
    if isinstance(value, datetime):
        if value.tzinfo is None:  # a plain DATETIME column holds the time as given
            return "'" + value.isoformat(" ") + "'"
        return _time_literal(value, name)
    if isinstance(value, date):
        return "'" + value.isoformat() + "'"
    raise TypeError(
        f"{name}: a {type(value).__name__} cannot be written by fast_upsert "
        "(only str, int, Decimal, datetime, date, bool or None)"
    )


def _row_literals(prepared: _Prepared, rows: Sequence[Mapping[str, Any]], driver) -> list[str]:
    """Each row as an SQL row literal "(v1,v2,...)". Strings are escaped by the driver (which
    follows the server's NO_BACKSLASH_ESCAPES mode), times are written in UTC,
    decimals exactly; naive times and floats for decimals are refused as the column types do."""
    escape = driver.escape  # quotes and escapes a str per the server's backslash mode
    names = prepared.names
    # Short strings repeat from row to row (a source, a symbol, a side): each is escaped once a
    # call. Longer ones (texts, JSON documents) are rarely the same and are not kept.
    escaped: dict[str, str] = {}

    def literal(kind: str, value: Any, name: str) -> str:
        if kind == "str" and type(value) is str:
            if len(value) > _SHORT_STRING:
                return escape(value)
            text = escaped.get(value)
            if text is None:
                text = escaped[value] = escape(value)
            return text
        if kind == "int" and type(value) is int:
            return str(value)
        if kind == "time":
            return _time_literal(value, name)
        if kind == "decimal":
            return _decimal_literal(value, name)
        if kind == "json":
            if value is None:
                return "NULL"
            return escape(value if type(value) is str else json_text(value))
        return _plain_literal(value, name, escape)

    kinds = prepared.kinds
    out = []
    for values in map(prepared.values, rows):
        out.append("(" + ",".join(map(literal, kinds, values, names)) + ")")
    return out


def _literal_statement(conn, table, key, columns, on_conflict) -> _Prepared | None:
    """`upsert`'s statement for rows written as literals (`_prepare`), or None: not MySQL/MariaDB,
    a key other than the primary key (the statement is compiled for that one), or a column type
    needing SQLAlchemy's bind processing."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return None
    if list(key) != [c.name for c in table.primary_key.columns]:
        return None
    return _prepare(conn, table, tuple(columns), on_conflict)


def _keys_in_literals(conn, table, key, keys: list[tuple]):
    """``(k1, k2, ...) IN ((...), ...)`` with the (normalised) keys written as SQL literals, as
    `_row_literals` writes rows, on MySQL/MariaDB: bound, each of the thousands of values would
    go through the type's and the driver's processing one Python call at a time. None elsewhere,
    or when a key column needs SQLAlchemy's bind processing."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return None
    kinds = tuple(_kind(table.c[k].type) for k in key)
    if None in kinds:
        return None
    names = tuple(key)
    prepared = _Prepared("", "", lambda values: values, kinds, names)  # type: ignore[arg-type]
    literals = _row_literals(prepared, keys, conn.connection.dbapi_connection)
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(k) for k in key)
    # untyped: typed Boolean, MySQL's compiler writes `(...) IN (...) = 1`, which no index serves
    # (every batch's read scanned the whole table)
    return literal_column(f"({columns}) IN ({', '.join(literals)})")


def fast_upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    on_conflict: OnConflict = "update",
) -> int:
    """`upsert(conn, table, rows, on_conflict=..., classify=False)` for hot paths, in the caller's
    transaction; returns how many rows were sent. Every row must have the columns of the first.

    On MySQL/MariaDB the statement `upsert` would build is compiled once per (table, columns) and
    sent as multi-row INSERTs of at most ~1 MB, its rows written as SQL literals here: PyMySQL's
    `executemany` spends most of its time escaping values one Python call at a time. Rows with the
    same key in one call: the first wins with `ignore`, the last with `update`, as in `upsert`.
    Other dialects, and tables with columns needing bind processing (JSON), use `upsert` itself.
    """
    if not rows:
        return 0
    prepared = (
        _prepare(conn, table, tuple(rows[0]), on_conflict)
        if conn.dialect.name in ("mysql", "mariadb")
        else None
    )
    if prepared is None:
        return upsert(conn, table, rows, on_conflict=on_conflict, classify=False).written
    _send_literals(conn, prepared, _row_literals(prepared, rows, conn.connection.dbapi_connection))
    return len(rows)


def _send_literals(conn: Connection, prepared: _Prepared, literals: list[str]) -> None:
    """Row literals sent as multi-row statements of at most ~1 MB."""
    budget = _MAX_STATEMENT_CHARS - len(prepared.prefix) - len(prepared.postfix)
    start = 0
    while start < len(literals):
        end, size = start, 0
        while end < len(literals) and (end == start or size + len(literals[end]) < budget):
            size += len(literals[end]) + 1
            end += 1
        sql = prepared.prefix + ",".join(literals[start:end]) + prepared.postfix
        # SQLAlchemy hands the driver an empty parameter tuple, so PyMySQL %-formats the text
        conn.exec_driver_sql(sql.replace("%", "%%") if "%" in sql else sql)
        start = end
