"""Whole UTC days as partitions, so that retention drops an archived day instead of deleting its
rows one by one (MariaDB/MySQL here; PostgreSQL in `storage.partitions_pg`, which the public
functions hand a PostgreSQL engine to; on SQLite every function here says "not partitioned").

Deleting millions of rows costs the server far more than the delete statements: InnoDB purges
every deleted record and flushes every page it dirtied, on the same cores the live writers use
(measured in `benchmarks/retention.py`: the sidecar's p99 stayed high with the retention process
stopped). A day that is a partition leaves the table as one metadata change.

A table whose `info` names a `PARTITION_DAY_COLUMN` (`trade_tick`: `traded_at`) is partitioned
by RANGE COLUMNS on it (migration 0032): `p_old` holds everything before the first day partition,
then one partition `dYYYYMMDD` per UTC day, then `p_future` (MAXVALUE) catches the rest, so an
insert never fails for want of a partition. Retention adds the days ahead (`ensure_day_partitions`)
and retires an archived day (`retire_day`):

1. an empty copy of the table takes the day's partition's rows by `EXCHANGE PARTITION` (atomic:
   a writer sees the rows in the table, or the partition empty);
2. the copy must hold exactly as many rows as the verified archive file: every archived row is
   in it (only retention removes rows), so an equal count means it holds no other row;
3. equal: the copy is dropped (the partition stays, empty); different (a row of that day
   written after it was archived): the partition is exchanged back, anything written into it
   meanwhile is put back too, and the caller deletes the archived rows by key instead;
4. at the end of the pass the emptied partitions are folded into `p_old` (`merge_retired`:
   `REORGANIZE`, which copies whatever rows they and `p_old` hold, so a late writer's row is
   kept; done only while those are few, since writers wait for the copy).

A copy left by a pass that died between 1 and 3 is put back before anything else is done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from loguru import logger
from sqlalchemy import Table, text
from sqlalchemy.engine import Connection, Engine

from ingestion_pipelines.storage import partitions_pg
from ingestion_pipelines.storage.schema_base import PARTITION_DAY_COLUMN

OLD = "p_old"
FUTURE = "p_future"
DAYS_AHEAD = 14  # day partitions kept ready ahead of today by every retention pass
# A catch-all partition is split only while it holds at most this many rows: splitting copies
# them, and the table's writers wait for the copy.
SPLIT_MAX_ROWS = 10_000
_DAY_NAME = re.compile(r"^d(\d{8})$")
_BOUND = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def day_column(table: Table) -> str | None:
    """The column a table is partitioned by day on (None: it is not declared partitioned)."""
    return table.info.get(PARTITION_DAY_COLUMN)


def partition_name(day: date) -> str:
    """The name of one UTC day's partition."""
    return f"d{day:%Y%m%d}"


def _bound(day: date) -> str:
    return f"'{day.isoformat()} 00:00:00'"


def day_partition_clauses(first: date, last: date) -> list[str]:
    """`p_old`, one partition per day from `first` to `last`, then `p_future` (DDL text)."""
    clauses = [f"PARTITION {OLD} VALUES LESS THAN ({_bound(first)})"]
    clauses += _day_clauses(first, last)
    clauses.append(f"PARTITION {FUTURE} VALUES LESS THAN (MAXVALUE)")
    return clauses


def _day_clauses(first: date, last: date) -> list[str]:
    days = (first + timedelta(days=n) for n in range((last - first).days + 1))
    return [
        f"PARTITION {partition_name(d)} VALUES LESS THAN ({_bound(d + timedelta(days=1))})"
        for d in days
    ]


@dataclass(frozen=True)
class Layout:
    """A partitioned table's partitions: names in order, and the days that are a partition."""

    names: list[str]
    days: dict[date, str]
    old_until: date  # p_old holds the rows before this day
    future_from: date  # p_future holds the rows from this day on
    # MariaDB/MySQL: where each partition but p_future ends (its rows are before that day)
    ends: list[date] = field(default_factory=list)


def layout(conn: Connection, table_name: str) -> Layout | None:
    """The day partitions of `table_name` (None: this database or table is not partitioned)."""
    if conn.dialect.name == "postgresql":
        found = partitions_pg.layout(conn, table_name)
        return Layout(*found) if found else None
    if conn.dialect.name not in ("mysql", "mariadb"):
        return None
    rows = conn.execute(
        text(
            "SELECT PARTITION_NAME, PARTITION_DESCRIPTION FROM information_schema.PARTITIONS"
            " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :table"
            " AND PARTITION_NAME IS NOT NULL ORDER BY PARTITION_ORDINAL_POSITION"
        ),
        {"table": table_name},
    ).all()
    if len(rows) < 2 or rows[0][0] != OLD or rows[-1][0] != FUTURE:
        return None
    bounds = [_parse_bound(description) for _, description in rows[:-1]]
    days = {}
    for (name, _), lower, upper in zip(rows[1:-1], bounds[:-1], bounds[1:], strict=True):
        match = _DAY_NAME.match(name)
        if match and upper - lower == timedelta(days=1) and partition_name(lower) == name:
            days[lower] = name
    return Layout([r[0] for r in rows], days, bounds[0], bounds[-1], bounds)


def _parse_bound(description: str) -> date:
    year, month, day = map(int, _BOUND.search(description).groups())
    return date(year, month, day)


def _rows_in(conn: Connection, table_name: str, partition: str, limit: int) -> int:
    """Rows in one partition, counted up to `limit` + 1."""
    query = f"SELECT COUNT(*) FROM (SELECT 1 FROM {table_name} PARTITION ({partition}) LIMIT {limit + 1}) AS head"  # noqa: E501
    return conn.execute(text(query)).scalar_one()


def ensure_day_partitions(engine: Engine, table: Table, first: date, last: date) -> list[date]:
    """Make every day from `first` to `last` a partition of `table` where it is partitioned
    (splitting `p_future` for days ahead, `p_old` for past days); the days made partitions. A
    catch-all holding more than `SPLIT_MAX_ROWS` is left as it is (said in the log): its days
    are then deleted by rows."""
    if day_column(table) is None:
        return []
    if engine.dialect.name == "postgresql":
        return partitions_pg.ensure_days(engine, table, first, last)
    made = []
    with _ddl(engine) as conn:
        found = layout(conn, table.name)
        if found is None:
            return []
        if last >= found.future_from:
            made += _split_future(conn, table.name, found, last)
        if first < found.old_until:
            made += _split_old(conn, table.name, found, first, last)
    return sorted(made)


def ensure_ahead(engine: Engine, table: Table, today: date | None = None) -> list[date]:
    """Every day up to `DAYS_AHEAD` days after today a partition (retention's first step: days
    ahead only; past days already in `p_old` stay there)."""
    if day_column(table) is None:
        return []
    if engine.dialect.name == "postgresql":
        today = today or datetime.now(UTC).date()
        return partitions_pg.ensure_ahead(engine, table, today, DAYS_AHEAD)
    last = (today or datetime.now(UTC).date()) + timedelta(days=DAYS_AHEAD)
    with _ddl(engine) as conn:
        found = layout(conn, table.name)
        if found is None or last < found.future_from:
            return []
        return _split_future(conn, table.name, found, last)


def _split_future(conn: Connection, table_name: str, found: Layout, last: date) -> list[date]:
    """`p_future` split into a partition per day from where it starts to `last`."""
    if not _can_split(conn, table_name, FUTURE):
        return []
    clauses = _day_clauses(found.future_from, last)
    clauses.append(f"PARTITION {FUTURE} VALUES LESS THAN (MAXVALUE)")
    _reorganize(conn, table_name, [FUTURE], clauses)
    return _days(found.future_from, last)


def _split_old(
    conn: Connection, table_name: str, found: Layout, first: date, last: date
) -> list[date]:
    """`p_old` split into itself before `first`, a partition per day to `last` (at most the day
    before it ends), and a filler partition for the days between, if any."""
    if not _can_split(conn, table_name, OLD):
        return []
    last = min(last, found.old_until - timedelta(days=1))
    clauses = [f"PARTITION {OLD} VALUES LESS THAN ({_bound(first)})"]
    clauses += _day_clauses(first, last)
    after = last + timedelta(days=1)
    if after < found.old_until:
        clauses.append(f"PARTITION r{after:%Y%m%d} VALUES LESS THAN ({_bound(found.old_until)})")
    _reorganize(conn, table_name, [OLD], clauses)
    return _days(first, last)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _can_split(conn: Connection, table_name: str, partition: str) -> bool:
    rows = _rows_in(conn, table_name, partition, SPLIT_MAX_ROWS)
    if rows > SPLIT_MAX_ROWS:
        logger.warning(
            "{}: partition {} holds more than {} rows; not split (its days are deleted by rows)",
            table_name,
            partition,
            SPLIT_MAX_ROWS,
        )
        return False
    return True


def _reorganize(conn: Connection, table_name: str, partitions: list[str], into: list[str]) -> None:
    conn.execute(
        text(
            f"ALTER TABLE {table_name} REORGANIZE PARTITION {', '.join(partitions)}"
            f" INTO ({', '.join(into)})"
        )
    )


def _ddl(engine: Engine):
    """A connection in autocommit: each statement here is DDL (which commits on its own) or one
    atomic statement."""
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def _copy_name(table_name: str) -> str:
    return f"{table_name}_retiring"


def put_back_leftover(engine: Engine, table: Table) -> int:
    """Rows of a copy left by a pass that died mid-retirement go back into the table (keys
    already there are kept as they are); the copy is dropped; rows put back."""
    if engine.dialect.name == "postgresql" and day_column(table) is not None:
        return partitions_pg.put_back_leftover(engine, table)
    copy = _copy_name(table.name)
    with _ddl(engine) as conn:
        if conn.dialect.name not in ("mysql", "mariadb"):
            return 0
        exists = conn.execute(
            text(
                "SELECT COUNT(*) FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :name"
            ),
            {"name": copy},
        ).scalar_one()
        if not exists:
            return 0
        back = conn.execute(text(f"INSERT IGNORE INTO {table.name} SELECT * FROM {copy}"))
        conn.execute(text(f"DROP TABLE {copy}"))
    if back.rowcount:
        logger.warning(
            "{}: {} rows of an unfinished retirement put back", table.name, back.rowcount
        )
    return back.rowcount


def retire_day(engine: Engine, table: Table, day: date, archived_rows: int) -> int | None:
    """Take `day`'s partition out of `table` if it holds exactly the `archived_rows` archived
    (see the module's steps); rows retired, or None when the day is not a partition here or held
    other rows too (then nothing left the table: delete the archived rows by key)."""
    if day_column(table) is None:
        return None
    if engine.dialect.name == "postgresql":
        return partitions_pg.retire_day(engine, table, day, archived_rows)
    put_back_leftover(engine, table)
    copy = _copy_name(table.name)
    with _ddl(engine) as conn:
        found = layout(conn, table.name)
        if found is None or day not in found.days:
            return None
        name = found.days[day]
        conn.execute(text(f"CREATE TABLE {copy} LIKE {table.name}"))
        conn.execute(text(f"ALTER TABLE {copy} REMOVE PARTITIONING"))
        conn.execute(text(f"ALTER TABLE {table.name} EXCHANGE PARTITION {name} WITH TABLE {copy}"))
        held = conn.execute(text(f"SELECT COUNT(*) FROM {copy}")).scalar_one()
        if held != archived_rows:
            partitions_pg.log_rows_written_since(table.name, day, held, archived_rows)
            conn.execute(
                text(f"ALTER TABLE {table.name} EXCHANGE PARTITION {name} WITH TABLE {copy}")
            )
            # rows written into the emptied partition meanwhile
            conn.execute(text(f"INSERT IGNORE INTO {table.name} SELECT * FROM {copy}"))
            conn.execute(text(f"DROP TABLE {copy}"))
            return None
        conn.execute(text(f"DROP TABLE {copy}"))
    return held


def merge_retired(engine: Engine, table: Table, before: date) -> list[str]:
    """Fold the partitions that end by `before` (the days `retire_day` emptied, and fillers)
    into `p_old`, so the day partitions do not pile up; the partitions folded. `REORGANIZE`
    copies the rows they and `p_old` hold (late rows, kept) while writers wait, so it is done
    only while they hold at most `SPLIT_MAX_ROWS` together; otherwise they stay (an empty
    partition costs little) and a later pass folds them."""
    if day_column(table) is None or engine.dialect.name not in ("mysql", "mariadb"):
        return []  # PostgreSQL's retired days are gaps its default partition covers
    with _ddl(engine) as conn:
        found = layout(conn, table.name)
        if found is None:
            return []
        folded, end = [], found.old_until
        for name, ends in zip(found.names[1:-1], found.ends[1:], strict=True):
            if ends > before:
                break
            folded.append(name)
            end = ends
        if not folded:
            return []
        held = sum(_rows_in(conn, table.name, n, SPLIT_MAX_ROWS) for n in [OLD, *folded])
        if held > SPLIT_MAX_ROWS:
            logger.warning(
                "{}: {} and {} partitions before {} hold more than {} rows; not folded yet",
                table.name,
                OLD,
                len(folded),
                before,
                SPLIT_MAX_ROWS,
            )
            return []
        clause = f"PARTITION {OLD} VALUES LESS THAN ({_bound(end)})"
        _reorganize(conn, table.name, [OLD, *folded], [clause])
    return folded
