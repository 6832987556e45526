"""Whole UTC days as partitions on PostgreSQL (declarative partitioning), so that retention
detaches and drops an archived day instead of deleting its rows; `storage.partitions` calls these
for a PostgreSQL engine (MariaDB/MySQL's partitions are its own).

A table whose `info` names a `PARTITION_DAY_COLUMN` (`trade_tick`: `traded_at`) is partitioned
BY RANGE on it (migration 0032):

- `<table>_dYYYYMMDD`: one partition per UTC day, FROM that day's midnight TO the next's;
- `<table>_old` (only where the migration found rows older than the days it made): FROM
  MINVALUE TO the first day, so old history does not sit in the default partition;
- `<table>_default`: the DEFAULT partition takes every other time (before the days when there
  is no `_old`, after the last day, a retired day's late rows), so an insert never fails for
  want of a partition. It stays small, which matters: making a day a partition scans it.

`layout()` reports the day partitions (`days`), `old_until` = the first day partition's day,
`future_from` = the day after the last one (both `date.min` when there is none); `names` are the
partitions in range order, `_old` first and `_default` last.

Making a day a partition (`ensure_days`, `ensure_ahead`): PostgreSQL refuses a partition whose
range has rows in the default partition, so the default partition is locked, the day's rows in
it (at most `MOVE_MAX_ROWS`, else the day is left there and said in the log: it is then deleted
by rows) move into a new table, and that table is attached, all in one transaction.

Retiring an archived day (`retire_day`), every step losing nothing:

1. the day's partition is counted (no lock); not exactly the archived rows: nothing is done,
   the caller deletes the archived rows by key;
2. one short transaction detaches it and renames it `<table>_retiring` (an ACCESS EXCLUSIVE lock
   on the table for a metadata change, waited for at most `LOCK_TIMEOUT`, tried `LOCK_TRIES`
   times, else the caller deletes by key). Rows of that day written from then on land in the
   default partition: they were not archived and stay for the next pass;
3. the detached table is counted again: exactly the archived rows (only retention removes rows,
   so it holds no other) and it is dropped; otherwise it is put back (below) and the caller
   deletes the archived rows by key.

Putting back `<table>_retiring` (step 3, or one left by a pass that died after step 2, which
every retention pass looks for first): in one transaction it becomes the day's partition again
(the day's rows written into the default partition meanwhile move into it, their values
winning); if that fails (another partition covers the day now, a lock not granted) its rows are
inserted into the table instead (keys already there kept as they are) and it is dropped.
"""

from __future__ import annotations

import re
import time
from datetime import date, timedelta

from loguru import logger
from sqlalchemy import MetaData, Table, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from ingestion_pipelines.storage.schema_base import PARTITION_DAY_COLUMN

# Rows of a day the default partition may hold for that day to still become a partition: they
# are moved while the default partition is locked.
MOVE_MAX_ROWS = 10_000
# A detach, attach or default-partition lock waits at most this long for running transactions
# (a waiting ACCESS EXCLUSIVE request would queue every writer behind it), tried this many times.
LOCK_TIMEOUT = "2s"
LOCK_TRIES = 3
_LOCK_NOT_AVAILABLE = "55P03"
_DAY_BOUNDS = re.compile(
    r"^FOR VALUES FROM \('(\d{4}-\d{2}-\d{2}) 00:00:00'\) TO \('(\d{4}-\d{2}-\d{2}) 00:00:00'\)$"
)
_OLD_BOUND = re.compile(r"^FOR VALUES FROM \(MINVALUE\) TO \('(\d{4}-\d{2}-\d{2}) 00:00:00'\)$")
_PARTITION_NAME = re.compile(r"^(?P<table>\w+)_(?:d\d{8}|old|default)$")


def day_table(table_name: str, day: date) -> str:
    """The name of one UTC day's partition."""
    return f"{table_name}_d{day:%Y%m%d}"


def default_table(table_name: str) -> str:
    """The DEFAULT partition's name."""
    return f"{table_name}_default"


def old_table(table_name: str) -> str:
    """The name of the partition of the times before the first day (made by the migration)."""
    return f"{table_name}_old"


def retiring_table(table_name: str) -> str:
    """The name a detached day's partition has until it is dropped or put back."""
    return f"{table_name}_retiring"


def _bound(day: date) -> str:
    return f"'{day.isoformat()} 00:00:00'"


def _range(day: date) -> str:
    return f"FROM ({_bound(day)}) TO ({_bound(day + timedelta(days=1))})"


def _in_day(column: str, day: date) -> str:
    return f"{column} >= {_bound(day)} AND {column} < {_bound(day + timedelta(days=1))}"


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def is_partition(name: str, metadata: MetaData) -> bool:
    """Whether a table named `name` is one of the partitions made here (schema comparisons skip
    them: PostgreSQL lists partitions as tables)."""
    match = _PARTITION_NAME.match(name)
    table = metadata.tables.get(match["table"]) if match else None
    return table is not None and PARTITION_DAY_COLUMN in table.info


def create_statements(
    table_name: str, column: str, first: date, last: date, old_before: date | None
) -> list[str]:
    """DDL making `table_name` (already PARTITION BY RANGE on `column`) its partitions: the
    default one, one per day from `first` to `last`, and `_old` for the times before `first` when
    `old_before` (the oldest row's day) is before it."""
    statements = [f"CREATE TABLE {default_table(table_name)} PARTITION OF {table_name} DEFAULT"]
    if old_before is not None and old_before < first:
        statements.append(
            f"CREATE TABLE {old_table(table_name)} PARTITION OF {table_name}"
            f" FOR VALUES FROM (MINVALUE) TO ({_bound(first)})"
        )
    statements += [
        f"CREATE TABLE {day_table(table_name, d)} PARTITION OF {table_name} FOR VALUES {_range(d)}"
        for d in _days(first, last)
    ]
    return statements


def layout(conn: Connection, table_name: str) -> tuple | None:
    """(names, days, old_until, future_from) of `table_name`'s partitions (see the module), or
    None when it is not partitioned with a default partition."""
    kind = conn.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table_name}
    ).scalar()
    if kind != "p":
        return None
    rows = conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": table_name},
    ).all()
    default = old = None
    days: dict[date, str] = {}
    others = []
    for name, bound in rows:
        match = _DAY_BOUNDS.match(bound)
        if bound == "DEFAULT":
            default = name
        elif _OLD_BOUND.match(bound) and name == old_table(table_name):
            old = name
        elif match and name == day_table(table_name, date.fromisoformat(match[1])):
            lower, upper = (date.fromisoformat(m) for m in match.groups())
            if upper - lower == timedelta(days=1):
                days[lower] = name
            else:
                others.append(name)
        else:
            others.append(name)
    if default is None:
        return None
    names = ([old] if old else []) + [days[d] for d in sorted(days)] + sorted(others) + [default]
    if not days:
        return names, days, date.min, date.min
    return names, days, min(days), max(days) + timedelta(days=1)


def _lock_timeout(conn: Connection) -> None:
    conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))


def _lock_not_granted(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "pgcode", None) == _LOCK_NOT_AVAILABLE


def _count(conn: Connection, table_name: str) -> int:
    return conn.execute(text(f"SELECT COUNT(*) FROM {table_name}")).scalar_one()


def _move_from_default(
    conn: Connection, table: Table, into: str, day: date, *, keyed: bool = True
) -> None:
    """The day's rows in the default partition moved into the table `into` (`keyed`: it has the
    key, and a key already there takes the default partition's values, written later; else it
    is new and empty). The default partition must be locked by the caller's transaction."""
    column = table.info[PARTITION_DAY_COLUMN]
    columns = [c.name for c in table.columns]
    key = [c.name for c in table.primary_key.columns]
    names = ", ".join(columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
    conn.execute(
        text(
            f"WITH moved AS (DELETE FROM {default_table(table.name)}"
            f" WHERE {_in_day(column, day)} RETURNING {names})"
            f" INSERT INTO {into} ({names}) SELECT {names} FROM moved"
            + (f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}" if keyed else "")
        )
    )


def _make_day(engine: Engine, table: Table, day: date) -> bool:
    """`day` made a partition of `table` (its rows in the default partition moved into it);
    False (said in the log) when it cannot be now."""
    column = table.info[PARTITION_DAY_COLUMN]
    name = day_table(table.name, day)
    default = default_table(table.name)
    try:
        with engine.begin() as conn:
            _lock_timeout(conn)
            conn.execute(text(f"LOCK TABLE {default} IN ACCESS EXCLUSIVE MODE"))
            waiting = conn.execute(
                text(
                    f"SELECT COUNT(*) FROM (SELECT 1 FROM {default} WHERE {_in_day(column, day)}"
                    f" LIMIT {MOVE_MAX_ROWS + 1}) AS head"
                )
            ).scalar_one()
            if waiting > MOVE_MAX_ROWS:
                logger.warning(
                    "{}: the default partition holds more than {} rows of {}; the day is not"
                    " made a partition (its rows are deleted by rows)",
                    table.name,
                    MOVE_MAX_ROWS,
                    day,
                )
                return False
            conn.execute(text(f"CREATE TABLE {name} (LIKE {table.name} INCLUDING DEFAULTS)"))
            if waiting:
                _move_from_default(conn, table, name, day, keyed=False)
            conn.execute(
                text(f"ALTER TABLE {table.name} ATTACH PARTITION {name} FOR VALUES {_range(day)}")
            )
    except DBAPIError as exc:
        logger.warning("{}: day {} not made a partition: {}", table.name, day, exc.orig)
        return False
    return True


def ensure_days(engine: Engine, table: Table, first: date, last: date) -> list[date]:
    """Every day from `first` to `last` that is not a partition of `table` made one where it can
    be (see the module); the days made partitions."""
    with engine.connect() as conn:
        found = layout(conn, table.name)
    if found is None:
        return []
    return [d for d in _days(first, last) if d not in found[1] and _make_day(engine, table, d)]


def ensure_ahead(engine: Engine, table: Table, today: date, days_ahead: int) -> list[date]:
    """The days after the last day partition (from today when there is none) up to `days_ahead`
    days after today made partitions (days already past among them too: retention may not have
    run for a while)."""
    with engine.connect() as conn:
        found = layout(conn, table.name)
    if found is None:
        return []
    first = found[3] if found[1] else today
    return ensure_days(engine, table, first, today + timedelta(days=days_ahead))


def put_back_leftover(engine: Engine, table: Table) -> int:
    """A `<table>_retiring` left by a step 3 or a dead pass put back (see the module); rows put
    back."""
    copy = retiring_table(table.name)
    column = table.info[PARTITION_DAY_COLUMN]
    with engine.connect() as conn:
        if conn.execute(text("SELECT to_regclass(:t)"), {"t": copy}).scalar() is None:
            return 0
        rows, low, high = conn.execute(
            text(f"SELECT COUNT(*), MIN({column}), MAX({column}) FROM {copy}")
        ).one()
    if rows and low.date() == high.date() and _reattach(engine, table, low.date()):
        logger.warning(
            "{}: {} rows of an unfinished retirement put back as the partition of {}",
            table.name,
            rows,
            low.date(),
        )
        return rows
    names = ", ".join(c.name for c in table.columns)
    with engine.begin() as conn:
        back = conn.execute(
            text(
                f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {copy}"
                " ON CONFLICT DO NOTHING"
            )
        ).rowcount
        conn.execute(text(f"DROP TABLE {copy}"))
    if back:
        logger.warning("{}: {} rows of an unfinished retirement put back", table.name, back)
    return back


def _reattach(engine: Engine, table: Table, day: date) -> bool:
    """`<table>_retiring` made `day`'s partition again, in one transaction (False: it was not)."""
    column = table.info[PARTITION_DAY_COLUMN]
    name = day_table(table.name, day)
    check = f"{name}_day"
    try:
        with engine.begin() as conn:
            _lock_timeout(conn)
            conn.execute(text(f"ALTER TABLE {retiring_table(table.name)} RENAME TO {name}"))
            # a valid CHECK implying the range spares the attach its scan (and the default
            # partition's lock for that long); it scans with only this table locked
            conn.execute(
                text(
                    f"ALTER TABLE {name} ADD CONSTRAINT {check}"
                    f" CHECK ({column} IS NOT NULL AND {_in_day(column, day)})"
                )
            )
            conn.execute(text(f"LOCK TABLE {default_table(table.name)} IN ACCESS EXCLUSIVE MODE"))
            _move_from_default(conn, table, name, day)
            conn.execute(
                text(f"ALTER TABLE {table.name} ATTACH PARTITION {name} FOR VALUES {_range(day)}")
            )
            conn.execute(text(f"ALTER TABLE {name} DROP CONSTRAINT {check}"))
    except DBAPIError as exc:
        logger.warning(
            "{}: the detached day {} not attached again ({}); its rows are inserted back",
            table.name,
            day,
            exc.orig,
        )
        return False
    return True


def _detach(engine: Engine, table_name: str, name: str) -> bool:
    """Partition `name` detached and renamed `<table>_retiring` (False: the lock was not had)."""
    for attempt in range(1, LOCK_TRIES + 1):
        try:
            with engine.begin() as conn:
                _lock_timeout(conn)
                conn.execute(text(f"ALTER TABLE {table_name} DETACH PARTITION {name}"))
                conn.execute(text(f"ALTER TABLE {name} RENAME TO {retiring_table(table_name)}"))
            return True
        except OperationalError as exc:
            if not _lock_not_granted(exc):
                raise
            logger.info("{}: {} not detached (lock wait, try {})", table_name, name, attempt)
            if attempt < LOCK_TRIES:
                time.sleep(attempt)
    return False


def retire_day(engine: Engine, table: Table, day: date, archived_rows: int) -> int | None:
    """`day`'s partition detached and dropped if it holds exactly the `archived_rows` archived
    (the module's steps); rows retired, or None: nothing left the table, delete by key."""
    put_back_leftover(engine, table)
    with engine.connect() as conn:
        found = layout(conn, table.name)
        if found is None or day not in found[1]:
            return None
        name = found[1][day]
        held = _count(conn, name)
    if held == archived_rows and not _detach(engine, table.name, name):
        logger.warning(
            "retention {} {}: its partition could not be detached (locks); deleting by key",
            table.name,
            day,
        )
        return None
    if held == archived_rows:
        with engine.connect() as conn:
            held = _count(conn, retiring_table(table.name))
        if held == archived_rows:
            with engine.begin() as conn:
                conn.execute(text(f"DROP TABLE {retiring_table(table.name)}"))
            return held
        put_back_leftover(engine, table)
    log_rows_written_since(table.name, day, held, archived_rows)
    return None


def log_rows_written_since(table_name: str, day: date, held: int, archived: int) -> None:
    """Say why a day's partition stays (MariaDB/MySQL's `partitions` says it the same way)."""
    logger.info(
        "retention {} {}: the partition held {} rows for {} archived (written since);"
        " deleting by key",
        table_name,
        day,
        held,
        archived,
    )
