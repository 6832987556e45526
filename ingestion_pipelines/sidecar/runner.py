"""The sidecar process: which feeds run here, their engines, writers, state and reports.

Every `tick_s` the supervisor decides, for each feed, whether it runs in this process: its
config-chain `enabled` is true, the Dagster switch (`FeedControl.enabled`) is not False, and — with
Redis — this sidecar holds the feed's ownership lock (a standby keeps trying, so it takes over
within the lock's TTL). The config chain is re-read every `config_poll_s`, so a new `symbols`
list is applied by reconnecting, without a restart.

Every `state_interval_s`: `worker_state` (status, heartbeat, last success, last error, details)
for the feeds this sidecar owns, live state on Redis (`ingest:feed:<id>:live`), a heartbeat to
Dagster. Every `report_interval_s` and at shutdown: a materialization per feed and ICT day.

`shutdown()`: stop reading, flush every batch (database, or the spool), final state and reports,
release the locks — well within 10 s.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from ingestion_pipelines.config import ConfigChain
from ingestion_pipelines.feeds.base import feed_classes
from ingestion_pipelines.resources.redis import get_redis
from ingestion_pipelines.settings import local_data_dir
from ingestion_pipelines.sidecar.engine import FeedEngine
from ingestion_pipelines.sidecar.ownership import LocalOwnership, RedisOwnership
from ingestion_pipelines.sidecar.spool import DEFAULT_MAX_BYTES, Spool
from ingestion_pipelines.sidecar.writer import Writer
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import worker_state
from ingestion_pipelines.storage.upsert import upsert


@dataclass
class SidecarOptions:
    database_url: str
    redis_url: str | None = None
    dagster_url: str | None = None
    feeds: list[str] | None = None  # None: every registered feed
    tick_s: float = 1.0
    config_poll_s: float = 5.0
    state_interval_s: float = 2.0
    report_interval_s: float = 180.0
    lock_ttl_s: float = 10.0
    spool_max_bytes: int = DEFAULT_MAX_BYTES
    writer: dict[str, Any] = field(default_factory=dict)  # Writer keyword overrides


class _Noop:
    """Stands in for the Dagster reporter/control when they cannot be used."""

    def start(self) -> None: ...
    def stop(self, timeout_s: float = 3) -> None: ...
    def report_materialization(self, *args: Any, **kwargs: Any) -> None: ...
    def heartbeat(self, *args: Any, **kwargs: Any) -> None: ...
    def enabled(self, worker_id: str) -> bool | None:
        return None


def _dagster_clients(url: str | None) -> tuple[Any, Any]:
    if not url:
        return _Noop(), _Noop()
    try:
        from ingestion_pipelines.sidecar.control import FeedControl
        from ingestion_pipelines.sidecar.reporter import DagsterReporter

        return DagsterReporter(url), FeedControl(url)
    except Exception as exc:  # noqa: BLE001 - ingestion never depends on Dagster
        logger.warning("Dagster reporting unavailable ({}): feeds run without it", exc)
        return _Noop(), _Noop()


def _safe(what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - never slows or stops ingestion
        logger.debug("{} failed: {}", what, exc)
        return None


class Sidecar:
    def __init__(self, options: SidecarOptions):
        self.options = options
        self.control_url = options.database_url
        classes = feed_classes()
        wanted = options.feeds or list(classes)
        unknown = [f for f in wanted if f not in classes]
        if unknown:
            raise ValueError(f"unknown feed(s) {unknown}; known feeds: {', '.join(classes)}")
        self.classes = {f: classes[f] for f in wanted}
        self.chain = ConfigChain(self.control_url)
        self.settings: dict[str, Any] = {}
        self.engines: dict[str, FeedEngine] = {}
        self.writers: dict[str, Writer] = {}
        self.stopped_state: dict[str, str] = {}
        redis_client = get_redis(
            options.redis_url or "",
            feature="the sidecar (one sidecar runs every feed; no locks, live state or pub/sub)",
        )
        self.redis = redis_client
        self.ownership = (
            RedisOwnership(redis_client, ttl_s=options.lock_ttl_s)
            if redis_client is not None
            else LocalOwnership()
        )
        self.reporter, self.control = _dagster_clients(options.dagster_url)
        self._stop = threading.Event()
        self._last_config = 0.0
        self._last_state = 0.0
        self._last_report = time.monotonic()
        self._rates: dict[str, tuple[float, int]] = {}

    # ---- plumbing -------------------------------------------------------------------------------
    def writer_for(self, url: str) -> Writer:
        writer = self.writers.get(url)
        if writer is None:
            try:
                ensure_schema(url)
            except Exception as exc:  # noqa: BLE001 - the writer spools until it answers
                logger.warning("database unavailable at start, spooling until it answers: {}", exc)
            max_bytes = self.options.spool_max_bytes
            writer = Writer(
                url,
                spools=lambda feed_id: Spool(local_data_dir() / "spool" / feed_id, max_bytes),
                publisher=self.redis,
                guard=self.ownership.owns,
                fence=self.ownership.fence,
                **self.options.writer,
            ).start()
            self.writers[url] = writer
        return writer

    def _resolve(self, feed_id: str) -> Any | None:
        try:
            settings = self.chain.resolve(feed_id).settings
        except Exception as exc:  # noqa: BLE001 - keep the last good settings
            log = logger.bind(worker_id=feed_id)
            if feed_id in self.settings:
                log.warning("config not re-read, keeping the current one: {}", exc)
                return self.settings[feed_id]
            # database down at start: run on environment and defaults until it answers
            log.warning("config database unavailable, using environment and defaults: {}", exc)
            settings = self.chain.resolve(feed_id, use_database=False).settings
        self.settings[feed_id] = settings
        return settings

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Sidecar:
        self.writer_for(self.control_url)
        self.ownership.start()
        _safe("reporter start", self.reporter.start)
        # FeedControl.start() asks Dagster once before returning: never let that delay the feeds
        threading.Thread(
            target=_safe, args=("feed control start", self.control.start), daemon=True
        ).start()
        return self

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        """Supervise until `request_stop()`, then shut down."""
        self.start()
        try:
            while not self._stop.is_set():
                self.tick()
                self._stop.wait(self.options.tick_s)
        finally:
            self.shutdown()
        return 0

    def tick(self) -> None:
        now = time.monotonic()
        reread = now - self._last_config >= self.options.config_poll_s
        if reread:
            self._last_config = now
        for feed_id in self.classes:
            settings = (
                self._resolve(feed_id)
                if reread or feed_id not in self.settings
                else self.settings[feed_id]
            )
            if settings is None:
                continue
            self._supervise(feed_id, settings)
        if now - self._last_state >= self.options.state_interval_s:
            self._last_state = now
            self.write_state()
        if now - self._last_report >= self.options.report_interval_s:
            self._last_report = now
            self.report()

    def _supervise(self, feed_id: str, settings: Any) -> None:
        switched = self.control.enabled(feed_id) if settings.enabled else False
        wanted = settings.enabled and switched is not False
        engine = self.engines.get(feed_id)
        log = logger.bind(worker_id=feed_id)
        if engine is not None and not engine.alive:
            self._stop_feed(feed_id, "error", "the feed thread ended unexpectedly")
            engine = None
        if engine is not None:
            if not wanted:
                why = (
                    "disabled in the config chain"
                    if not settings.enabled
                    else "switched off in Dagster"
                )
                log.info("feed stopped: {}", why)
                self._stop_feed(feed_id, "stopped", why, release=True)
            elif not self.ownership.owns(feed_id):
                log.error("feed stopped: the ownership lock was lost")
                self._stop_feed(feed_id, "stopped", "ownership lock lost", write=False)
            elif _connection_key(engine.settings) != _connection_key(settings):
                log.info("settings changed (symbols/URL): reconnecting with {}", settings.symbols)
                engine.reconfigure(settings, "settings changed")
            else:
                engine.settings = settings
            return
        if not wanted:
            if feed_id not in self.stopped_state and isinstance(self.ownership, LocalOwnership):
                self.stopped_state[feed_id] = "disabled"
                self._write_rows(
                    [self._state_row(feed_id, "stopped", None, {"reason": "disabled"})]
                )
            return
        if not self.ownership.acquire(feed_id):
            return  # standby: another sidecar runs it
        self.stopped_state.pop(feed_id, None)
        feed = self.classes[feed_id]()
        data_url = settings.database_url or self.control_url
        engine = FeedEngine(
            feed_id,
            feed,
            settings,
            self.writer_for(data_url),
            control_writer=self.writer_for(self.control_url),
        )
        self.engines[feed_id] = engine.start()
        log.info("feed started (symbols {})", settings.symbols)

    def _stop_feed(
        self, feed_id: str, status: str, why: str, *, release: bool = False, write: bool = True
    ):
        engine = self.engines.pop(feed_id)
        engine.stop(2.0)
        if write:
            self._write_rows(
                [
                    self._state_row(
                        feed_id,
                        status,
                        why if status == "error" else None,
                        {**engine.snapshot(), "reason": why},
                    )
                ]
            )
        self._report_feed(feed_id, engine)
        if release:
            self.ownership.release(feed_id)
            self.stopped_state[feed_id] = status

    def shutdown(self, budget_s: float = 8.0) -> None:
        deadline = time.monotonic() + budget_s
        engines = list(self.engines.values())
        for engine in engines:
            engine.request_stop()
        for engine in engines:
            engine.join(max(0.1, min(2.0, deadline - time.monotonic() - 5)))
        for writer in self.writers.values():
            if not writer.stop(max(0.5, deadline - time.monotonic() - 2.5)):
                logger.error(
                    "writer for {} did not flush everything before the deadline",
                    writer.database_url,
                )
        self.write_state(final=True)
        self.report()
        _safe(
            "reporter stop",
            self.reporter.stop,
            timeout_s=max(0.2, min(2.0, deadline - time.monotonic())),
        )
        _safe("feed control stop", self.control.stop, timeout_s=0.5)
        self.ownership.stop()
        logger.info("sidecar stopped")

    # ---- state and reports ------------------------------------------------------------------
    def _metrics(self, feed_id: str, engine: FeedEngine):
        return engine.writer.metrics_for(feed_id)

    def _state_row(self, feed_id: str, status: str, error: str | None, details: dict[str, Any]):
        return {
            "worker_id": feed_id,
            "status": status,
            "heartbeat_at": datetime.now(UTC),
            "last_success_at": details.pop("_last_success_at", None),
            "last_error": error,
            "details": details,
        }

    def _write_rows(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        try:
            upsert(
                ensure_schema(self.control_url),
                worker_state,
                rows,
                on_conflict="update",
                classify=False,
            )
        except Exception as exc:  # noqa: BLE001 - the database may be down: next time
            logger.debug("worker_state not written: {}", exc)

    def details(self, feed_id: str, engine: FeedEngine) -> dict[str, Any]:
        snap = engine.snapshot()
        metrics = self._metrics(feed_id, engine)
        now = time.monotonic()
        last_t, last_n = self._rates.get(feed_id, (now, engine.messages))
        rate = (engine.messages - last_n) / (now - last_t) if now > last_t else 0.0
        self._rates[feed_id] = (now, engine.messages)
        snap.update(
            messages_per_s=round(rate, 1),
            lag_s=metrics.lag_s,
            rows_written=metrics.rows_written,
            trades_written=metrics.trades_written,
            spooled_rows=metrics.spooled_rows,
            writer_pending_rows=engine.writer.pending_rows,
            database_down=engine.writer.down,
            last_trade_at=metrics.last_trade_at.isoformat() if metrics.last_trade_at else None,
            fencing_token=self.ownership.fence(feed_id),
            host=os.uname().nodename,
            pid=os.getpid(),
            _last_success_at=metrics.last_commit_at,
        )
        return snap

    def write_state(self, final: bool = False) -> None:
        rows = []
        for feed_id, engine in list(self.engines.items()):
            details = self.details(feed_id, engine)
            metrics = self._metrics(feed_id, engine)
            error = metrics.last_error if engine.writer.down else engine.last_error
            status = "stopped" if final else engine.status
            if status in ("starting", "backpressure"):
                status = "disconnected"
            if metrics.last_error and engine.writer.down:
                status = "error"
            rows.append(self._state_row(feed_id, status, error, details))
            if not final:
                _safe(
                    "heartbeat",
                    self.reporter.heartbeat,
                    feed_id,
                    status,
                    {k: v for k, v in details.items() if not k.startswith("_")},
                )
            if self.redis is not None:
                live = {
                    k: ("" if v is None else str(v))
                    for k, v in details.items()
                    if not k.startswith("_") and not isinstance(v, list)
                }
                key = f"ingest:feed:{feed_id}:live"
                try:
                    pipe = self.redis.pipeline(transaction=False)
                    pipe.hset(key, mapping=live)
                    pipe.expire(key, 30)
                    pipe.execute()
                except Exception as exc:  # noqa: BLE001
                    logger.debug("live state not written to Redis: {}", exc)
        self._write_rows(rows)

    def _report_feed(self, feed_id: str, engine: FeedEngine) -> None:
        metrics = self._metrics(feed_id, engine)
        gaps = engine.filler.stats.as_dict() if engine.filler is not None else {}
        for day, stats in sorted(metrics.days.items()):
            metadata = {
                "rows_written": stats.trades,
                "first_trade_at": stats.first_trade_at.isoformat()
                if stats.first_trade_at
                else None,
                "last_trade_at": stats.last_trade_at.isoformat() if stats.last_trade_at else None,
                "lag_s": metrics.lag_s,
                "reconnects": engine.reconnects,
                "dead_letters": engine.dead_letters,
                **gaps,
            }
            _safe(
                "materialization report",
                self.reporter.report_materialization,
                feed_id,
                day,
                metadata,
            )

    def report(self) -> None:
        for feed_id, engine in list(self.engines.items()):
            self._report_feed(feed_id, engine)


def _connection_key(settings: Any) -> tuple:
    return (tuple(settings.symbols), settings.base_url, getattr(settings, "boards", None))
