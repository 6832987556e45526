"""The sidecar process: which feeds run here, their engines, writers, state and reports.

Every `tick_s` the supervisor decides, for each feed, whether it runs: its config-chain `enabled`
is true and the Dagster switch (`FeedControl.enabled`) is not False. A feed runs as shards
(`shards.py`: its symbols split within the source's connection limits; one shard unless
`symbols_per_shard` makes more), one engine and one connection each. Without Redis every shard runs
here. With Redis, replicas share the shards: each renews a heartbeat, computes the same balanced
assignment over the live replicas, runs a shard only while it holds the shard's ownership lock
(lease + fencing token, `ownership.py`), hands a shard over (stop, flush, release) when the balance
asks for it, and takes the shards of a replica that died once their leases run out. The config
chain is re-read every `config_poll_s`, so a new `symbols` list is applied by reconnecting, without
a restart.

Every `state_interval_s`: `worker_state` (status, heartbeat, last success, last error, details)
for the feeds this sidecar runs (its shards merged), live state on Redis
(`ingest:feed:<id>:live`), a heartbeat to Dagster. Every `report_interval_s` and at shutdown: a
materialization per feed and ICT day. (That part is `status.py`, a mixin of `Sidecar`.)

`shutdown()`: leave the replica set (the others rebalance at once), stop reading, flush every batch
(database, or the spool), final state and reports, release the locks — well within 10 s.

With `http_port`, `health.py` serves /healthz, /readyz and /metrics from this object's state.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from ingestion_pipelines.config.chain import ConfigChain
from ingestion_pipelines.core.redis_client import get_redis
from ingestion_pipelines.core.settings import local_data_dir
from ingestion_pipelines.feeds.base import feed_classes
from ingestion_pipelines.sidecar.engine import FeedEngine
from ingestion_pipelines.sidecar.health import HealthServer
from ingestion_pipelines.sidecar.ownership import LocalOwnership, RedisOwnership
from ingestion_pipelines.sidecar.shards import (
    ConnectionBudget,
    ReplicaSet,
    Shard,
    plan_shards,
    to_run,
    worker_of,
)
from ingestion_pipelines.sidecar.spool import DEFAULT_MAX_BYTES, Spool
from ingestion_pipelines.sidecar.startup import freeze_startup_objects
from ingestion_pipelines.sidecar.status import SidecarStatus, engine_counters, safely
from ingestion_pipelines.sidecar.writer import Writer
from ingestion_pipelines.sidecar.writer_process import ProcessWriter
from ingestion_pipelines.storage.engines import ensure_schema


@dataclass
class SidecarOptions:
    """What `ingest sidecar` was asked to run: database, Redis, Dagster, feeds, intervals."""

    database_url: str
    redis_url: str | None = None
    dagster_url: str | None = None
    feeds: list[str] | None = None  # None: every registered feed
    tick_s: float = 1.0
    config_poll_s: float = 5.0
    state_interval_s: float = 2.0
    report_interval_s: float = 180.0
    lock_ttl_s: float = 8.0  # a dead owner's shards move after this (+ a tick): within 15 s
    replica_ttl_s: float = 5.0  # a replica silent this long is gone: its shards move
    symbols_per_shard: int = 0  # 0: as many as the source allows on one connection
    http_host: str = "127.0.0.1"
    http_port: int = 0  # /healthz, /readyz, /metrics (0: off)
    spool_max_bytes: int = DEFAULT_MAX_BYTES
    writer: dict[str, Any] = field(default_factory=dict)  # Writer keyword overrides
    # the writer in its own process (`writer_process.py`: parsing and writing on two cores), as
    # `ingest sidecar` runs it; False: a thread of this process (a sidecar embedded in a test)
    writer_process: bool = False


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
        from ingestion_pipelines.dagster_api.feed_switches import FeedControl
        from ingestion_pipelines.sidecar.reporter import DagsterReporter

        return DagsterReporter(url), FeedControl(url)
    except Exception as exc:  # noqa: BLE001 - ingestion never depends on Dagster
        logger.warning("Dagster reporting unavailable ({}): feeds run without it", exc)
        return _Noop(), _Noop()


class Sidecar(SidecarStatus):
    """The supervisor: starts, reconfigures and stops one engine per owned feed (or shard), reports
    to Dagster."""

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
        self.writers: dict[str, Writer | ProcessWriter] = {}
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
        self.replicas = (
            ReplicaSet(redis_client, self.ownership.token, ttl_s=options.replica_ttl_s)
            if redis_client is not None
            else None
        )
        self.live_replicas: list[str] | None = None
        self.last_beat_at: float | None = None
        self.last_tick_at: float | None = None
        self.plan_errors: dict[str, str] = {}
        self.shard_writers: dict[
            str, Writer | ProcessWriter
        ] = {}  # every shard ever run here -> its writer
        self._free_since: dict[str, float] = {}
        self.budget = ConnectionBudget(redis_client)
        self._budget_said: dict[str, float] = {}
        self._retired: dict[str, dict[str, int]] = {}  # counters of stopped engines, per shard
        self._spool_samples: deque[tuple[float, int]] = deque(maxlen=64)
        self.reporter, self.control = _dagster_clients(options.dagster_url)
        self.http: HealthServer | None = None
        self._stop = threading.Event()
        self._last_config = 0.0
        self._last_state = 0.0
        self._last_report = time.monotonic()
        self._rates: dict[str, tuple[float, int]] = {}

    # ---- plumbing -------------------------------------------------------------------------------
    def writer_for(self, url: str) -> Writer | ProcessWriter:
        """The writer of a database URL (one per URL, started on first use)."""
        writer = self.writers.get(url)
        if writer is None:
            try:
                ensure_schema(url)
            except Exception as exc:  # noqa: BLE001 - the writer spools until it answers
                logger.warning("database unavailable at start, spooling until it answers: {}", exc)
            writer = self._new_writer(url).start()
            self.writers[url] = writer
        return writer

    def _new_writer(self, url: str) -> Writer | ProcessWriter:
        max_bytes = self.options.spool_max_bytes
        if self.options.writer_process:
            return ProcessWriter(
                url,
                spool_dir=local_data_dir() / "spool",
                spool_max_bytes=max_bytes,
                redis_url=self.options.redis_url if self.redis is not None else None,
                guard=self.ownership.owns,
                fence=self.ownership.fence,
                **self.options.writer,
            )
        return Writer(
            url,
            spools=lambda feed_id: Spool(local_data_dir() / "spool" / feed_id, max_bytes),
            publisher=self.redis,
            guard=self.ownership.owns,
            fence=self.ownership.fence,
            **self.options.writer,
        )

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
        """Start the writers, ownership, health server and reporter."""
        if self.options.http_port:
            self._serve_http()
        self.writer_for(self.control_url)
        self.ownership.start()
        safely("reporter start", self.reporter.start)
        # FeedControl.start() asks Dagster once before returning: never let that delay the feeds
        threading.Thread(
            target=safely, args=("feed control start", self.control.start), daemon=True
        ).start()
        return self

    def _serve_http(self) -> None:
        host, port = self.options.http_host, self.options.http_port
        try:
            self.http = HealthServer(self, host, port).start()
        except OSError as exc:  # ingestion never depends on the probes
            logger.error("health and metrics not served on {}:{}: {}", host, port, exc)

    def request_stop(self) -> None:
        """Ask `run()` to shut down after the current tick."""
        self._stop.set()

    def run(self) -> int:
        """Supervise until `request_stop()`, then shut down."""
        self.start()
        try:
            started = False
            while not self._stop.is_set():
                self.tick()
                if not started:  # the first tick started the feeds
                    freeze_startup_objects()
                    started = True
                self._stop.wait(self.options.tick_s)
        finally:
            self.shutdown()
        return 0

    def tick(self) -> None:
        """One supervision step: heartbeat, re-read config when due, start/stop/restart engines,
        write state."""
        now = time.monotonic()
        self.last_tick_at = now
        reread = now - self._last_config >= self.options.config_poll_s
        if reread:
            self._last_config = now
        self._beat()
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
            self._spool_samples.append((now, self.spool_bytes()))
        if now - self._last_report >= self.options.report_interval_s:
            self._last_report = now
            self.report()

    # ---- shards and replicas --------------------------------------------------------------------
    def _beat(self) -> None:
        """Renew this replica's heartbeat and learn who else is live (Redis only)."""
        if self.replicas is None:
            return
        live = self.replicas.beat()
        if live is not None:
            self.last_beat_at = time.monotonic()
            if live != self.live_replicas:
                logger.info("live sidecar replicas: {}", len(live))
        self.live_replicas = live

    def _plan(self, feed_id: str, settings: Any) -> list[Shard]:
        source = getattr(self.classes[feed_id], "source", None)
        symbols = list(getattr(settings, "symbols", None) or [])
        try:
            return plan_shards(feed_id, source, symbols, self.options.symbols_per_shard)
        except ValueError as exc:
            if self.plan_errors.get(feed_id) != str(exc):
                logger.bind(worker_id=feed_id).error("feed not started: {}", exc)
            self.plan_errors[feed_id] = str(exc)
            return []

    def _mine(self, keys: list[str]) -> set[str]:
        """The shard keys this replica should run: all of them without Redis; with Redis, as
        `shards.to_run` balances them over the live replicas, plus any shard nobody took for a
        while."""
        if isinstance(self.ownership, LocalOwnership) or not keys:
            return set(keys)
        holders = self._holders(keys)
        if self.live_replicas is None or holders is None:  # Redis down: keep, take nothing
            return {k for k in keys if k in self.engines}
        me = self.ownership.token
        for key in self.engines:  # running means held, even if the lease just ran out
            if key in holders:
                holders[key] = me
        mine, _take = to_run(keys, holders, self.live_replicas, me)
        for key in keys:
            if holders[key] is not None:
                self._free_since.pop(key, None)
            elif key not in mine and self._orphaned(key):
                mine.add(key)
        return mine

    def _holders(self, keys: list[str]) -> dict[str, str | None] | None:
        """Shard key -> the replica holding its lease (None: free); None when Redis is down."""
        try:
            values = self.redis.mget([RedisOwnership.key(k) for k in keys])
        except Exception:  # noqa: BLE001 - Redis down: nothing is taken anyway
            return None
        return {k: (v.decode() if v else None) for k, v in zip(keys, values, strict=True)}

    def _orphaned(self, key: str) -> bool:
        """Free for longer than a replica's heartbeat and a lease: its assigned replica is not
        taking it (it disagrees or is stuck), so any replica may."""
        grace = 2 * self.options.replica_ttl_s + self.options.lock_ttl_s
        now = time.monotonic()
        return now - self._free_since.setdefault(key, now) > grace

    def _supervise(self, feed_id: str, settings: Any) -> None:
        switched = self.control.enabled(feed_id) if settings.enabled else False
        wanted = settings.enabled and switched is not False
        shards = {s.key: s for s in self._plan(feed_id, settings)} if wanted else {}
        for key in [k for k in self.engines if worker_of(k) == feed_id and k not in shards]:
            if not wanted:
                why = (
                    "disabled in the config chain"
                    if not settings.enabled
                    else "switched off in Dagster"
                )
            else:
                why = "the symbols were split into new shards"
            logger.bind(worker_id=feed_id).info("feed stopped ({}): {}", key, why)
            self._stop_feed(key, "stopped", why, release=True)
        if not wanted:
            if feed_id not in self.stopped_state and isinstance(self.ownership, LocalOwnership):
                self.stopped_state[feed_id] = "disabled"
                self._write_rows(
                    [self._state_row(feed_id, "stopped", None, {"reason": "disabled"})]
                )
            return
        mine = self._mine(list(shards))
        for key, shard in shards.items():
            self._supervise_shard(shard, _shard_settings(settings, shard), key in mine)

    def _supervise_shard(self, shard: Shard, settings: Any, mine: bool) -> None:
        key, feed_id = shard.key, shard.feed_id
        engine = self.engines.get(key)
        log = logger.bind(worker_id=feed_id)
        if engine is not None and not engine.alive:
            self._stop_feed(key, "error", "the feed thread ended unexpectedly")
            engine = None
        if engine is not None:
            if not self.ownership.owns(key):
                log.error("feed stopped ({}): the ownership lock was lost", key)
                self._stop_feed(key, "stopped", "ownership lock lost", write=False)
            elif not mine:
                log.info("shard {} handed over to another replica", key)
                self._stop_feed(key, "stopped", "handed over", release=True, write=False)
            elif _connection_key(engine.settings) != _connection_key(settings):
                log.info("settings changed (symbols/URL): reconnecting with {}", settings.symbols)
                engine.reconfigure(settings, "settings changed")
            else:
                engine.settings = settings
            return
        if not mine:
            return  # standby: another sidecar runs it
        if not self.budget.take(getattr(self.classes[feed_id], "source", None)):
            if time.monotonic() - self._budget_said.get(key, -60.0) >= 60:
                self._budget_said[key] = time.monotonic()
                log.warning("shard {} waits: the source's connections per window are used", key)
            return
        if not self.ownership.acquire(key):
            return
        self.stopped_state.pop(feed_id, None)
        feed = self.classes[feed_id]()
        data_url = settings.database_url or self.control_url
        engine = FeedEngine(
            key,
            feed,
            settings,
            self.writer_for(data_url),
            control_writer=self.writer_for(self.control_url),
        )
        self.engines[key] = engine.start()
        self.shard_writers[key] = engine.writer
        log.info("feed started ({}, symbols {})", key, settings.symbols)

    def _stop_feed(
        self, key: str, status: str, why: str, *, release: bool = False, write: bool = True
    ):
        engine = self.engines.pop(key)
        engine.stop(2.0)
        retired = self._retired.setdefault(key, {})
        for name, value in engine_counters(engine).items():
            retired[name] = retired.get(name, 0) + value
        if write:
            self._write_rows(
                [
                    self._state_row(
                        worker_of(key),
                        status,
                        why if status == "error" else None,
                        {**engine.snapshot(), "reason": why},
                    )
                ]
            )
        self._report_feed(key, engine)
        if release:
            engine.writer.flush(2.0)  # what it read is committed before another replica resumes
            self.ownership.release(key)
            self.stopped_state[worker_of(key)] = status

    def shutdown(self, budget_s: float = 8.0) -> None:
        """Stop every engine, flush the writers and release the leases within `budget_s`."""
        deadline = time.monotonic() + budget_s
        if self.replicas is not None:
            self.replicas.leave()  # the others rebalance now; our leases go at the end
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
        safely(
            "reporter stop",
            self.reporter.stop,
            timeout_s=max(0.2, min(2.0, deadline - time.monotonic())),
        )
        safely("feed control stop", self.control.stop, timeout_s=0.5)
        self.ownership.stop()
        if self.http is not None:
            self.http.stop()
        logger.info("sidecar stopped")


def _shard_settings(settings: Any, shard: Shard) -> Any:
    """The feed's settings narrowed to the shard's symbols (unchanged for a one-shard feed)."""
    if shard.count == 1:
        return settings
    return settings.model_copy(update={"symbols": list(shard.symbols)})


def _connection_key(settings: Any) -> tuple:
    return (tuple(settings.symbols), settings.base_url, getattr(settings, "boards", None))
