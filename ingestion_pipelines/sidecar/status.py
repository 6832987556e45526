"""The sidecar's status and reports: `worker_state` rows (shards merged per feed), live state on
Redis (`ingest:feed:<id>:live`), heartbeats and per-day materializations to Dagster, and the
counters `/metrics` and `/readyz` read (`health.py`). A mixin of `runner.Sidecar`: it reads the
supervisor's engines, writers, ownership and reporter."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from ingestion_pipelines.sidecar.engine import FeedEngine
from ingestion_pipelines.sidecar.shards import worker_of
from ingestion_pipelines.sidecar.writer import Writer
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import worker_state
from ingestion_pipelines.storage.upsert import upsert


def safely(what: str, fn, *args, **kwargs):
    """`fn(*args, **kwargs)`, or None when it fails (logged at debug: never stops ingestion)."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - never slows or stops ingestion
        logger.debug("{} failed: {}", what, exc)
        return None


class SidecarStatus:
    """State, reports and counters of the feeds a `Sidecar` runs (see module doc)."""

    # ---- health and metrics (read by health.py's threads) -------------------------------------
    def shard_counters(self) -> dict[str, dict[str, float]]:
        """Per shard ever run here: counters since start (engines come and go), and gauges."""
        out: dict[str, dict[str, float]] = {}
        engines = dict(self.engines)
        for key, writer in list(self.shard_writers.items()):
            values: dict[str, float] = dict(self._retired.get(key, {}))
            engine = engines.get(key)
            if engine is not None:
                for name, value in engine_counters(engine).items():
                    values[name] = values.get(name, 0) + value
            metrics = writer.metrics_for(key)
            values.update(
                rows_committed=metrics.rows_written,
                trades_committed=metrics.trades_written,
                dropped_not_owner=metrics.dropped_not_owner,
                spool_bytes=_spool_size(writer, key),
                owned=1 if engine is not None else 0,
            )
            if engine is not None and metrics.lag_s is not None:
                values["lag_s"] = metrics.lag_s
            out[key] = values
        return out

    def spool_bytes(self) -> int:
        """Bytes waiting in the disk spools of every shard run here."""
        return sum(_spool_size(w, key) for key, w in list(self.shard_writers.items()))

    def spool_growing(self, window_s: float = 10.0) -> bool:
        """True when the spools hold more bytes than `window_s` ago (the database is not keeping
        up, or is down)."""
        samples = list(self._spool_samples)
        if not samples:
            return False
        now, latest = samples[-1]
        older = [b for t, b in samples if now - t >= window_s] or [samples[0][1]]
        return latest > older[-1]

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
        """A feed's `worker_state` details: engine snapshot, rates, write metrics."""
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

    def _shard_state(self, key: str, engine: FeedEngine, final: bool):
        """(status, error, details) of one shard's engine."""
        details = self.details(key, engine)
        metrics = self._metrics(key, engine)
        error = metrics.last_error if engine.writer.down else engine.last_error
        status = "stopped" if final else engine.status
        if status in ("starting", "backpressure"):
            status = "disconnected"
        if metrics.last_error and engine.writer.down:
            status = "error"
        return status, error, details

    def write_state(self, final: bool = False) -> None:
        """One `worker_state` row per feed: the shards this replica runs, merged."""
        by_feed: dict[str, list[tuple[str, FeedEngine]]] = {}
        for key, engine in list(self.engines.items()):
            by_feed.setdefault(worker_of(key), []).append((key, engine))
        rows = []
        for feed_id, shards in by_feed.items():
            states = {key: self._shard_state(key, engine, final) for key, engine in shards}
            status, error, details = (
                _merge_states(states) if len(states) > 1 else next(iter(states.values()))
            )
            rows.append(self._state_row(feed_id, status, error, details))
            if not final:
                safely(
                    "heartbeat",
                    self.reporter.heartbeat,
                    feed_id,
                    status,
                    {k: v for k, v in details.items() if not k.startswith("_")},
                )
            if self.redis is not None:
                self._write_live(feed_id, details)
        self._write_rows(rows)

    def _write_live(self, feed_id: str, details: dict[str, Any]) -> None:
        live = {
            k: ("" if v is None else str(v))
            for k, v in details.items()
            if not k.startswith("_") and not isinstance(v, list | dict)
        }
        key = f"ingest:feed:{feed_id}:live"
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(key, mapping=live)
            pipe.expire(key, 30)
            pipe.execute()
        except Exception as exc:  # noqa: BLE001
            logger.debug("live state not written to Redis: {}", exc)

    def _report_feed(self, key: str, engine: FeedEngine) -> None:
        metrics = self._metrics(key, engine)
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
            if key != worker_of(key):
                metadata["shard"] = key
            safely(
                "materialization report",
                self.reporter.report_materialization,
                worker_of(key),
                day,
                metadata,
            )

    def report(self) -> None:
        """Send every running feed's report to Dagster."""
        for feed_id, engine in list(self.engines.items()):
            self._report_feed(feed_id, engine)


def _spool_size(writer: Writer, key: str) -> int:
    try:
        return writer.spool(key).size()
    except FileNotFoundError:  # a spool file replayed while being measured
        return 0


def engine_counters(engine: FeedEngine) -> dict[str, int]:
    """An engine's counters since it started (messages, reconnects, dead letters, gaps)."""
    stats = engine.filler.stats if engine.filler is not None else None
    return {
        "messages": engine.messages,
        "reconnects": engine.reconnects,
        "dead_letters": engine.dead_letters,
        "gaps_found": stats.found if stats else 0,
        "gap_trades_missing": stats.missing if stats else 0,
        "gap_trades_filled": stats.filled if stats else 0,
        **({"resyncs": engine.session.stats()["resyncs"]} if engine.session is not None else {}),
    }


_STATUS_ORDER = ("error", "disconnected", "stopped", "connected")
_SUMMED = (
    "messages",
    "reconnects",
    "dead_letters",
    "messages_per_s",
    "rows_written",
    "trades_written",
    "spooled_rows",
    "writer_pending_rows",
)


def _merge_states(states: dict[str, tuple[str, str | None, dict[str, Any]]]):
    """A feed's state from its shards here: the worst status, counters summed, per-shard parts."""
    statuses = [status for status, _e, _d in states.values()]
    status = min(statuses, key=lambda s: _STATUS_ORDER.index(s) if s in _STATUS_ORDER else 0)
    error = next((e for _s, e, _d in states.values() if e), None)
    parts = [d for _s, _e, d in states.values()]
    merged = dict(parts[0])
    for name in _SUMMED:
        merged[name] = sum(d.get(name) or 0 for d in parts)
    summed = ("gap", "resyncs", "books", "book_", "keepalives")
    for name in [k for k, v in parts[0].items() if k.startswith(summed) and isinstance(v, int)]:
        merged[name] = sum(d.get(name) or 0 for d in parts)
    merged["lag_s"] = max((d["lag_s"] for d in parts if d.get("lag_s") is not None), default=None)
    merged["database_down"] = any(d.get("database_down") for d in parts)
    merged["symbols"] = sorted(s for d in parts for s in d.get("symbols") or [])
    stamps = [d["last_trade_at"] for d in parts if d.get("last_trade_at")]
    merged["last_trade_at"] = max(stamps, default=None)
    successes = [d["_last_success_at"] for d in parts if d.get("_last_success_at")]
    merged["_last_success_at"] = max(successes, default=None)
    merged["status"] = status
    merged["fencing_token"] = None
    merged["shards"] = {
        key: {"status": s, "fencing_token": d["fencing_token"]}
        for key, (s, _e, d) in states.items()
    }
    return status, error, merged
