"""Retention, archived first: whole UTC days older than a table's limit are written to Parquet
(`storage.archive`), verified, and only then deleted, in short transactions.

One pass over a table (`retention_pass`) walks its old days oldest first. For each day it reads
the rows in pages by key (`page_rows` per short read transaction, `key > last key`, never one
long scan), streams them into the day's archive file, publishes the file once it has been read
back and checked, and then deletes exactly the keys the published file holds, `delete_rows` per
transaction. Writers are never blocked for longer than one small delete: no table lock, no long
transaction. A failed write or verification raises `ArchiveError` before anything is deleted.
"""

from __future__ import annotations

import os
import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from loguru import logger
from sqlalchemy import Table, and_, func, literal, or_, select, tuple_
from sqlalchemy.engine import Engine

from ingestion_pipelines.storage import partitions, tables
from ingestion_pipelines.storage.archive import (
    ArchivedFile,
    ArchiveError,
    DayWriter,
    archive_fs,
    iter_key_batches,
    raw_select,
)
from ingestion_pipelines.storage.archive_cx import (
    connectorx_url,
    read_page_cx,
    render_sql,
    text_decimal_select,
)
from ingestion_pipelines.storage.archive_pages import PageError, read_page
from ingestion_pipelines.storage.retention_deletes import delete_key_batch

# The time column that dates each row, per table retention may act on. `crawl_checkpoint` holds
# the run artifacts: checkpoints of crawls that never completed their range.
TIME_COLUMNS = {
    "execution_log": "logged_at",
    "dead_letter": "received_at",
    "trade_tick": "traded_at",
    "stock_quote": "quoted_at",
    "crawl_checkpoint": "committed_at",
    "order_book_snapshot": "at",  # the book's time at its update id (binance_depth)
}
# Days kept by the scheduled `retention` job unless INGEST_RETENTION_POLICIES says otherwise.
# Keys deleted per transaction. Each commit is a redo-log flush the live writers' commits queue
# behind: measured side by side on MariaDB (benchmarks/retention.py, 2M rows, idle machine),
# 10,000 a transaction deleted 62,000 rows/s with the sidecar's p99 at 22 ms, 2,000 deleted
# 46,000 rows/s at 26 ms, 500 far worse on both.
DELETE_ROWS = 10_000

DEFAULT_POLICIES = {
    "execution_log": 30,
    "dead_letter": 90,
    "trade_tick": 180,
    "stock_quote": 90,
    "crawl_checkpoint": 14,
    "order_book_snapshot": 30,
}


@dataclass
class DayResult:
    """What one table-day's pass did."""

    table: str
    day: date
    archived: int = 0
    deleted: int = 0
    file: ArchivedFile | None = None
    by_partition: bool = False  # the day left as a whole partition, not row by row


@dataclass
class PassResult:
    """One table's pass: the days archived and deleted."""

    table: str
    cutoff: datetime
    days: list[DayResult] = field(default_factory=list)

    @property
    def archived(self) -> int:
        """Rows written to verified archive files."""
        return sum(d.archived for d in self.days)

    @property
    def deleted(self) -> int:
        """Rows deleted after their archive was verified."""
        return sum(d.deleted for d in self.days)


def policies_from_env(text: str | None = None) -> dict[str, int]:
    """`INGEST_RETENTION_POLICIES` (`table=days,...`; 0 or `off` switches a table off) over the
    defaults."""
    policies = dict(DEFAULT_POLICIES)
    text = os.environ.get("INGEST_RETENTION_POLICIES", "") if text is None else text
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, days = item.partition("=")
        name = name.strip()
        if name not in TIME_COLUMNS:
            raise ArchiveError(f"INGEST_RETENTION_POLICIES: no retention for table {name!r}")
        days = days.strip().lower()
        if days in ("off", "0"):
            policies.pop(name, None)
            continue
        if not days.isdigit():
            raise ArchiveError(f"INGEST_RETENTION_POLICIES: {item!r}: days must be a number")
        policies[name] = int(days)
    return policies


def retention_table(name: str) -> tuple[Table, str] | None:
    """(table, time column) for a table retention may act on; None when this schema has no such
    table."""
    if name not in TIME_COLUMNS:
        raise ArchiveError(f"no retention policy can apply to table {name!r}")
    table = tables.metadata.tables.get(name)
    if table is None:
        return None
    column = TIME_COLUMNS[name]
    if column not in table.c:
        raise ArchiveError(f"{name}: its time column {column} does not exist")
    return table, column


def key_columns(table: Table) -> list[str]:
    """The primary key's column names (the natural key of data tables)."""
    return [c.name for c in table.primary_key.columns]


def delete_key_columns(table: Table) -> list[str]:
    """The key archived rows are deleted by, within their day: the primary key without the
    column a day partition needs in it (`trade_tick`'s `traded_at`), so that consecutive keys
    form ranges of trade ids (see `retention_deletes`)."""
    names = key_columns(table)
    extra = partitions.day_column(table)
    return [n for n in names if n != extra] if extra and len(names) > 1 else names


def _after(columns: Sequence, last: tuple, dialect: str = ""):
    """`(c1, c2, ...) > last` as each database reads it as a key range: PostgreSQL as a row
    comparison (it applies the OR form as a filter to an index scan from the key's start, so
    each page would read every row before it: measured 2.2 s for a page 3 million rows in),
    MariaDB/MySQL and SQLite as ORs (MariaDB's optimizer ranges those, not the row form)."""
    if dialect == "postgresql" and len(columns) > 1:
        return tuple_(*columns) > tuple_(
            *(literal(v, c.type) for v, c in zip(last, columns, strict=True))
        )
    first, rest = columns[0], columns[1:]
    if not rest:
        return first > last[0]
    return or_(first > last[0], and_(first == last[0], _after(rest, last[1:])))


class Throttle:
    """Yields the database and the cores back between steps: after a step that took t seconds,
    waits `ratio` * t (0: no pause), so a pass uses at most 1 / (1 + ratio) of the time."""

    def __init__(self, ratio: float = 0.0):
        self.ratio = max(0.0, ratio)
        self._started = _time.perf_counter()

    def step_done(self) -> None:
        """Call after each page read or delete batch."""
        if self.ratio:
            _time.sleep((_time.perf_counter() - self._started) * self.ratio)
        self._started = _time.perf_counter()


def lower_priority(niceness: int) -> int:
    """Raise this process's niceness to `niceness` (never lowers it: an unprivileged process
    could not go back); the niceness now. The pass's Python share of the cores then yields to
    live writers on the same machine (within one container or cgroup; the database's own work
    for the pass is not affected)."""
    current = os.nice(0)
    return os.nice(niceness - current) if niceness > current else current


def throttle_defaults(pause_ratio: float | None, nice: int | None) -> tuple[float, int]:
    """(pause ratio, niceness): the given values, else INGEST_RETENTION_PAUSE_RATIO and
    INGEST_RETENTION_NICE."""
    from ingestion_pipelines.core.settings import get_settings

    settings = get_settings()
    return (
        settings.retention_pause_ratio if pause_ratio is None else pause_ratio,
        settings.retention_nice if nice is None else nice,
    )


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), UTC)
    return start, start + timedelta(days=1)


def _first_day(engine: Engine, table: Table, column: str, since: datetime | None, cutoff):
    """The day of the oldest row at or after `since` and before `cutoff` (None: none left)."""
    col = table.c[column]
    query = select(func.min(col)).where(col < cutoff)
    if since is not None:
        query = query.where(col >= since)
    with engine.connect() as conn:
        oldest = conn.execute(query).scalar()
    return oldest.astimezone(UTC).date() if oldest is not None else None


def _write_day(engine, table, column, day, writer: DayWriter, page_rows: int, throttle) -> int:
    """Stream the day's rows into `writer`, page by page (one short read each, straight into
    Arrow columns); rows written."""
    names = key_columns(table)
    keys = [table.c[name] for name in names]
    start, end = _day_bounds(day)
    window = and_(table.c[column] >= start, table.c[column] < end)
    last: tuple | None = None
    written = 0
    cx_url = connectorx_url(engine.url)  # None: the driver's cursor (SQLite, unknown options)
    columns = text_decimal_select(table) if cx_url else raw_select(table)
    while True:
        query = columns.where(window).order_by(*keys).limit(page_rows)
        if last is not None:
            query = query.where(_after(keys, last, engine.dialect.name))
        try:
            batch = _read_page(engine, cx_url, query, writer.schema)
        except PageError as exc:
            raise ArchiveError(f"{table.name} {day}: {exc}") from None
        if not batch.num_rows:
            return written
        writer.write(batch)
        written += batch.num_rows
        throttle.step_done()
        last = tuple(batch.column(name)[-1].as_py() for name in names)
        if batch.num_rows < page_rows:
            return written


def _read_page(engine: Engine, cx_url: str | None, query, schema):
    """One page: through connectorx when it reads this database, else the driver's cursor."""
    if cx_url is not None:
        return read_page_cx(cx_url, render_sql(engine, query), schema)
    with engine.connect() as conn:
        return read_page(conn, query, schema)


def _delete_archived(engine, table, column, day, archived, fs, batch_rows, throttle) -> int:
    """Delete exactly the keys the published file holds (and still of that day), one short
    transaction per batch (`retention_deletes`)."""
    start, end = _day_bounds(day)
    window = and_(table.c[column] >= start, table.c[column] < end)
    deleted = 0
    for batch in iter_key_batches(fs, archived.url, delete_key_columns(table), batch_rows):
        deleted += delete_key_batch(engine, table, window, batch)
        throttle.step_done()
    return deleted


def archive_day(
    engine: Engine,
    table: Table,
    column: str,
    day: date,
    *,
    archive_url: str | None = None,
    page_rows: int = 20_000,
    delete_rows: int = DELETE_ROWS,
    pause_ratio: float = 0.0,
    after_publish: Callable[[ArchivedFile], None] | None = None,
) -> DayResult:
    """Archive one table-day, verify the file, then delete the rows it holds (`pause_ratio`:
    see `Throttle`)."""
    fs, root = archive_fs(archive_url)
    result = DayResult(table.name, day)
    writer = DayWriter(fs, root, table, day, key_columns(table))
    try:
        throttle = Throttle(pause_ratio)
        result.archived = _write_day(engine, table, column, day, writer, page_rows, throttle)
        if not result.archived:
            writer.discard()
            return result
        result.file = writer.publish()
    except Exception:
        writer.discard()
        raise
    if after_publish is not None:
        after_publish(result.file)
    retired = partitions.retire_day(engine, table, day, result.file.rows)
    result.by_partition = retired is not None
    if retired is None:
        retired = _delete_archived(
            engine, table, column, day, result.file, fs, delete_rows, throttle
        )
    result.deleted = retired
    logger.info(
        "retention {} {}: {} rows archived to {}, {} deleted{}",
        table.name,
        day,
        result.archived,
        result.file.url,
        result.deleted,
        " (its partition dropped)" if result.by_partition else "",
    )
    return result


def retention_pass(
    engine: Engine,
    table_name: str,
    older_than_days: int,
    *,
    archive_url: str | None = None,
    now: datetime | None = None,
    **options,
) -> PassResult:
    """Archive then delete every whole UTC day of `table_name` older than `older_than_days`."""
    if older_than_days < 1:
        raise ArchiveError("older-than-days must be at least 1")
    now = now or datetime.now(UTC)
    cutoff_day = (now - timedelta(days=older_than_days)).astimezone(UTC).date()
    cutoff = datetime.combine(cutoff_day, time(0), UTC)
    result = PassResult(table_name, cutoff)
    found = retention_table(table_name)
    if found is None:
        logger.info("retention {}: no such table here yet, nothing to do", table_name)
        return result
    table, column = found
    partitions.put_back_leftover(engine, table)
    partitions.ensure_ahead(engine, table, now.astimezone(UTC).date())
    since = None
    while (day := _first_day(engine, table, column, since, cutoff)) is not None:
        result.days.append(
            archive_day(engine, table, column, day, archive_url=archive_url, **options)
        )
        since = _day_bounds(day)[1]
    partitions.merge_retired(engine, table, cutoff_day)
    return result
