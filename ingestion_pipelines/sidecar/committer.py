"""The batch committer: the one write path behind the writer's thread (`writer.Writer`) and its
process (`writer_process.py`). Given batches of (feed, table, on_conflict, rows), it

- commits them in one transaction, idempotent upserts (`storage.upsert.fast_upsert`) with each
  table's conflict rule; inside it, checks the fencing token of the feeds whose tables are
  fenced and keeps one-minute bars current from the tables that derive them
  (`table_policy`, `bars.LiveBars`);
- database down: each batch goes to its feed's disk spool (`spool.py`, fsynced), and the spool is
  replayed (first) once the database answers again; a full spool holds the batch (`held`), so
  nothing is dropped silently;
- a batch that fails while the database still answers (a data error, a value out of range, a
  packet too large, even one that made the server drop the connection) is poison, not an outage:
  it is split in halves until only the refused rows are left, and those go to `dead_letter`
  (payload capped) with the reason; the rest commits. Only a database that does not answer a
  probe counts as down. Spool replay isolates poison the same way, so nothing wedges;
- dead letters are inserted with ignore semantics on their fingerprint;
- after a commit: metrics per feed (`write_metrics`), the `on_commit` hook, and the committed
  trades and updated bars published on Redis (`ticks:<source>:<symbol>`,
  `bars:<source>:<symbol>`, pipelined) when a publisher is given;
- `guard(feed_id)` False (the feed's ownership lock is lost) drops the feed's rows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from loguru import logger
from sqlalchemy import select
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
)

from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.sidecar.bars import LiveBars, bar_message
from ingestion_pipelines.sidecar.shards import worker_of
from ingestion_pipelines.sidecar.spool import Spool, SpoolFull
from ingestion_pipelines.sidecar.write_metrics import WriteMetrics, account
from ingestion_pipelines.storage.dead_letters import dead_letter_row, insert_dead_letters
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.table_policy import policy_of
from ingestion_pipelines.storage.tables import CONTROL_TABLES, DATA_TABLES, feed_fence
from ingestion_pipelines.storage.upsert import fast_upsert

_TABLES = {**DATA_TABLES, **CONTROL_TABLES}
# (feed id, table, on_conflict, rows)
Item = tuple[str, str, str, list[dict[str, Any]]]


class Fenced(IngestError, RuntimeError):
    """A commit by a sidecar whose fencing token is older than the newest committed one."""

    def __init__(self, feed_id: str, token: int, newest: int):
        super().__init__(
            f"{feed_id}: fencing token {token} is older than {newest}: another sidecar owns the "
            "feed; this batch is dropped (the owner has or will fetch these trades)"
        )
        self.feed_id = feed_id


# Errors about the data, never about the database's availability.
_DATA_ERRORS = (DataError, IntegrityError, ProgrammingError, NotSupportedError)
# MySQL/MariaDB: lock wait timeout, deadlock: the same batch may pass when tried again.
_RETRY_LATER_CODES = {1205, 1213}


def _may_be_outage(exc: BaseException) -> bool:
    """Whether `exc` can mean the database is unavailable (then a probe decides)."""
    if isinstance(exc, _DATA_ERRORS):
        return False
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, ConnectionError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _error_code(exc: BaseException) -> int | None:
    args = getattr(getattr(exc, "orig", None), "args", None)
    return args[0] if args and isinstance(args[0], int) else None


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


def _publish_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


class BatchCommitter:
    """Commits batches into one database, or spools, isolates or holds them (see module doc)."""

    def __init__(
        self,
        database_url: str,
        *,
        spools: Callable[[str], Spool],
        retry_s: float = 1.0,
        publisher: Any = None,
        guard: Callable[[str], bool] | None = None,
        fence: Callable[[str], int | None] | None = None,
        on_commit: Callable[[str, str, list[dict[str, Any]], float], None] | None = None,
        live_bars: bool = True,
    ):
        self.database_url = database_url
        self.retry_s = retry_s
        self.publisher = publisher
        self.guard = guard
        self.fence = fence
        self.on_commit = on_commit
        self.bars = LiveBars() if live_bars else None
        self.metrics: dict[str, WriteMetrics] = {}
        self.down = False
        self._spools = spools
        self._spool_cache: dict[str, Spool] = {}
        self._replay_lock = threading.Lock()
        self._held: list[Item] = []  # batches neither the database nor the spool could take
        self._next_retry = 0.0
        self._engine = None
        self._last_publish_error = 0.0

    def metrics_for(self, feed_id: str) -> WriteMetrics:
        """The write metrics of a feed (created on first use)."""
        m = self.metrics.get(feed_id)
        if m is None:
            m = self.metrics[feed_id] = WriteMetrics()
        return m

    @property
    def held(self) -> bool:
        """Whether batches wait that neither the database nor the spool could take."""
        return bool(self._held)

    @property
    def held_rows(self) -> int:
        """Rows in the batches held back."""
        return sum(len(item[3]) for item in self._held)

    def close(self) -> None:
        """Close the spools (the committer is done)."""
        for spool in self._spool_cache.values():
            spool.close()

    # ---- spools --------------------------------------------------------------------------
    def spool(self, feed_id: str) -> Spool:
        """The disk spool of a feed."""
        spool = self._spool_cache.get(feed_id)
        if spool is None:
            spool = self._spool_cache[feed_id] = self._spools(feed_id)
        return spool

    def replay_spool(self, feed_id: str) -> int:
        """Write the feed's spooled batches (oldest first); returns rows replayed. Raises on outage."""
        spool = self.spool(feed_id)
        total = 0
        with self._replay_lock:
            for path in spool.replay_files():
                for table, on_conflict, rows in Spool.records(path):
                    key = (feed_id, table, on_conflict)
                    try:
                        self._commit({key: rows})
                    except Exception as exc:  # noqa: BLE001 - poison or outage: decided here
                        if self._is_down(exc):
                            raise
                        self._isolate({key: rows}, exc)
                        if self.down:  # went down while isolating: the file is kept
                            raise OperationalError("spool replay", None, exc) from exc
                    total += len(rows)
                path.unlink()
        if total:
            logger.bind(worker_id=feed_id).info("replayed {} rows from the disk spool", total)
        return total

    def replay_first(self, feed_ids: list[str]) -> None:
        """Replay the non-empty spools of these feeds before the next write (a new writer process
        taking over from one that died: what it spooled is not left behind)."""
        waiting = [f for f in feed_ids if self.spool(f).size()]
        if waiting:
            self.down = True
            self._next_retry = 0.0

    def engine(self):
        """The SQLAlchemy engine of the database (the schema checked on first use)."""
        if self._engine is None:
            self._engine = ensure_schema(self.database_url)
        return self._engine

    # ---- writing -------------------------------------------------------------------------------
    def recover_if_due(self) -> None:
        """While the database is down: replay the spools when a retry is due (then it is up)."""
        if self.down and time.monotonic() >= self._next_retry:
            self._try_recover()

    def retry_held(self) -> bool:
        """Write the batches held back; True when none is held any more."""
        if self._held:
            held, self._held = self._held, []
            self.write(held)
        return not self._held

    def write_batch(self, items: list[Item]) -> bool:
        """The spool replay first when a retry is due, then the batches held back, then `items`
        (held too, in order, while the spool is full and the database down). True when nothing
        is held (every row committed, spooled, dead-lettered or dropped as not owned); False:
        call again (with no items) after `retry_s`."""
        self.recover_if_due()
        self.retry_held()
        if items:
            if self._held:  # the spool is full and the database down: keep the order
                self._held.extend(items)
            else:
                self.write(items)
        return not self._held

    def _try_recover(self) -> None:
        try:
            for feed_id in list(self._spool_cache):
                self.replay_spool(feed_id)
        except Exception as exc:  # noqa: BLE001 - still down: try again later
            self._next_retry = time.monotonic() + self.retry_s
            if _may_be_outage(exc):
                logger.debug("database still unavailable: {}", exc)
            else:
                logger.error("spool replay failed (retrying): {}", exc)
            return
        self.down = False
        logger.info("database reachable again: spool replayed, writing directly")

    def write(self, items: list[Item]) -> None:
        """Commit `items` (grouped per feed, table and conflict rule) in one transaction, or
        isolate their poison, or spool them when the database is down."""
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for feed_id, table, on_conflict, rows in items:
            groups.setdefault((feed_id, table, on_conflict), []).extend(rows)
        if self.guard is not None:
            for key in list(groups):
                if not self.guard(key[0]):
                    rows = groups.pop(key)
                    self.metrics_for(key[0]).dropped_not_owner += len(rows)
        if not groups:
            return
        if not self.down:
            try:
                self._commit(groups)
                return
            except Exception as exc:  # noqa: BLE001 - classified below
                if not self._is_down(exc):
                    self._isolate(groups, exc)
                    return
                self._went_down(exc)
        self._to_spool(groups)

    def _went_down(self, exc: BaseException) -> None:
        if not self.down:
            logger.warning(
                "database unavailable, batches go to the disk spool until it returns: {}",
                _first_line(exc),
            )
        self.down = True
        self._next_retry = time.monotonic() + self.retry_s

    def _reachable(self) -> bool:
        """Whether the database answers a trivial query on a fresh (pre-pinged) connection."""
        try:
            with self.engine().connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception:  # noqa: BLE001
            return False
        return True

    def _is_down(self, exc: BaseException) -> bool:
        """Whether a failed commit means the database is unavailable (spool and retry), rather
        than refusing this batch's data (isolate the poison). Ambiguous errors — a connection
        dropped by the server, e.g. after a packet over `max_allowed_packet` — are settled by
        probing the database."""
        if _error_code(exc) in _RETRY_LATER_CODES:
            return True
        return _may_be_outage(exc) and not self._reachable()

    def _to_spool(self, groups) -> None:
        for (feed_id, table, on_conflict), rows in groups.items():
            try:
                self.spool(feed_id).append(table, on_conflict, rows)
                self.metrics_for(feed_id).spooled_rows += len(rows)
            except SpoolFull as exc:
                metrics = self.metrics_for(feed_id)
                if metrics.last_error != str(exc):
                    logger.bind(worker_id=feed_id).error(str(exc))
                metrics.last_error = str(exc)
                self._held.append((feed_id, table, on_conflict, rows))

    def _commit(self, groups) -> None:
        bars = self.bars if any(policy_of(k[1]).derived_bars for k in groups) else None
        if bars is None:
            self._commit_locked(groups, None)
            return
        with bars.lock:
            self._commit_locked(groups, bars)

    def _commit_locked(self, groups, bars: LiveBars | None) -> None:
        engine = self.engine()
        updated_bars: list[dict[str, Any]] = []
        try:
            with engine.begin() as conn:
                self._check_fences(conn, groups)
                self._write_groups(conn, groups)
                if bars is not None:
                    for (_f, table, _c), rows in groups.items():
                        if policy_of(table).derived_bars:
                            updated_bars.extend(bars.apply(conn, rows))
            if bars is not None:
                bars.committed()
        except BaseException as exc:
            if bars is not None:
                bars.rolled_back()
            if not isinstance(exc, Fenced):
                raise
            fenced = exc
            rows = sum(len(r) for k, r in groups.items() if k[0] == fenced.feed_id)
            self.metrics_for(fenced.feed_id).dropped_not_owner += rows
            logger.bind(worker_id=fenced.feed_id).error(str(fenced))
            rest = {k: r for k, r in groups.items() if k[0] != fenced.feed_id}
            if rest:
                self._commit_locked(rest, bars)
            return
        self._after_commit(groups, updated_bars)

    def _check_fences(self, conn, groups) -> None:
        """Inside the batch's transaction: a feed whose fencing token is older than the newest
        one that committed has lost its lock to another sidecar, and may not commit."""
        if self.fence is None:
            return
        now = datetime.now(UTC)
        for feed_id in {key[0] for key in groups if policy_of(key[1]).fenced}:
            token = self.fence(feed_id)
            if token is None:
                continue
            stored = conn.execute(
                select(feed_fence.c.token).where(feed_fence.c.feed_id == feed_id).with_for_update()
            ).scalar_one_or_none()
            if stored is None:
                conn.execute(
                    feed_fence.insert(), [{"feed_id": feed_id, "token": token, "updated_at": now}]
                )
            elif stored > token:
                raise Fenced(feed_id, token, stored)
            elif stored < token:
                conn.execute(
                    feed_fence.update()
                    .where(feed_fence.c.feed_id == feed_id)
                    .values(token=token, updated_at=now)
                )

    def _write_groups(self, conn, groups) -> None:
        for (_feed, table_name, on_conflict), rows in groups.items():
            if table_name == "dead_letter":  # (spools from before 0008 say "insert")
                insert_dead_letters(conn, rows)
            else:
                fast_upsert(conn, _TABLES[table_name], rows, on_conflict=on_conflict)

    def _after_commit(self, groups, bars: list[dict[str, Any]]) -> None:
        committed = time.time()
        for (feed_id, table_name, _c), rows in groups.items():
            account(self.metrics_for(feed_id), table_name, rows, committed)
            if self.on_commit is not None:
                self.on_commit(feed_id, table_name, rows, committed)
        if self.publisher is not None:
            self._publish(groups, bars)

    def _isolate(self, groups, first_error: BaseException) -> None:
        """A batch the database refused while answering: commit it in halves until only the
        refused rows are left; those go to dead_letter. An outage meanwhile spools the rest."""
        logger.warning(
            "a batch was refused ({}); splitting it, refused rows go to dead_letter",
            _first_line(first_error),
        )
        for key, rows in groups.items():
            self._bisect(key, rows)

    def _bisect(self, key: tuple[str, str, str], rows: list[dict[str, Any]]) -> None:
        if self.down:
            self._to_spool({key: rows})
            return
        try:
            self._commit({key: rows})
            return
        except Exception as exc:  # noqa: BLE001 - poison or outage: decided here
            if self._is_down(exc):
                self._went_down(exc)
                self._to_spool({key: rows})
                return
            if len(rows) == 1:
                self._refused(key, rows[0], exc)
                return
        half = len(rows) // 2
        self._bisect(key, rows[:half])
        self._bisect(key, rows[half:])

    def _refused(self, key: tuple[str, str, str], row: dict[str, Any], exc: BaseException):
        """One row the database refuses: to dead_letter, capped. A dead letter that is itself
        refused is written again with its payload cut to the head; failing that, logged."""
        feed_id, table, _c = key
        reason = f"refused by the database ({table}): {type(exc).__name__}: {_first_line(exc)}"
        if table == "dead_letter":
            letter = dead_letter_row(
                worker_of(feed_id),  # a shard key names its feed
                f"{row.get('reason', '')} [{reason}]",
                row.get("payload", ""),
                received_at=row.get("received_at"),
                context=row.get("context") if isinstance(row.get("context"), dict) else None,
            )
            if letter["payload"] == row.get("payload"):
                letter["payload"] = str(letter["payload"])[:1024]
        else:  # dated when the row was received, if it says: refused again, it is the same letter
            received_at = row.get("received_at")
            letter = dead_letter_row(
                worker_of(feed_id),
                reason,
                repr(row),
                received_at=received_at if isinstance(received_at, datetime) else None,
                context={"table": table},
            )
        dl_key = (feed_id, "dead_letter", "ignore")
        try:
            self._commit({dl_key: [letter]})
        except Exception as again:  # noqa: BLE001
            if self._is_down(again):
                self._went_down(again)
                self._to_spool({dl_key: [letter]})
            else:
                self.metrics_for(feed_id).dead_letters_lost += 1
                logger.bind(worker_id=feed_id).error(
                    "a dead letter was refused too and is dropped ({}): {}",
                    _first_line(again),
                    str(letter["payload"])[:200],
                )

    def _publish(self, groups, bars: list[dict[str, Any]]) -> None:
        by_channel: dict[str, list[dict[str, Any]]] = {}
        for (_feed, table, _c), rows in groups.items():
            if not policy_of(table).trades:
                continue
            for row in rows:
                by_channel.setdefault(f"ticks:{row['source']}:{row['symbol']}", []).append(row)
        if not by_channel and not bars:
            return
        try:
            pipe = self.publisher.pipeline(transaction=False)
            for channel, rows in by_channel.items():
                pipe.publish(channel, orjson.dumps(rows, default=_publish_default))
            for bar in bars:
                channel = f"bars:{bar['source']}:{bar['symbol']}"
                pipe.publish(channel, orjson.dumps(bar_message(bar)))
            pipe.execute()
        except Exception as exc:  # noqa: BLE001 - dashboards are best effort
            now = time.monotonic()
            if now - self._last_publish_error > 60:
                self._last_publish_error = now
                logger.warning("Redis publish failed (dashboards miss ticks): {}", exc)
