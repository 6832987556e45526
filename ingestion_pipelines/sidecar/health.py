"""Health and metrics for orchestrators: `/healthz`, `/readyz` and `/metrics` over HTTP.

Served by the standard library's threading HTTP server on `INGEST_SIDECAR_HTTP_HOST`:
`INGEST_SIDECAR_HTTP_PORT` (0: off), in daemon threads that only read the sidecar's state (no
Dagster here, and a slow probe never slows ingestion):

- `/healthz`: 200 while the supervisor loop turns (it ticked recently) and no writer process is
  crash-looping, else 503: restart me;
- `/readyz`: 200 when the supervisor turns, this replica owns its shards or stands by correctly
  (its Redis heartbeat is fresh and every running shard holds a fresh lease), the databases answer
  `SELECT 1`, and the disk spool is not growing; else 503. The body (JSON) says which check failed;
- `/metrics`: Prometheus text format 0.0.4: messages read, rows and trades committed, lag,
  reconnects, gaps, dead letters, spool bytes, owned shards, live replicas.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from loguru import logger
from sqlalchemy import text

from ingestion_pipelines.core.redaction import redact
from ingestion_pipelines.sidecar.ownership import LocalOwnership
from ingestion_pipelines.sidecar.shards import worker_of
from ingestion_pipelines.storage.engines import get_engine

ALIVE_LIMIT_S = 30.0  # no tick for this long: stuck (3 failed probes 10 s apart, typically)
DB_CHECK_CACHE_S = 2.0  # probes come every few seconds from several orchestrators
SPOOL_WINDOW_S = 10.0

# name, type, help, the shard_counters() field
_SHARD_METRICS = (
    ("ingest_sidecar_messages_total", "counter", "Websocket data frames read.", "messages"),
    (
        "ingest_sidecar_rows_committed_total",
        "counter",
        "Rows committed to the database.",
        "rows_committed",
    ),
    (
        "ingest_sidecar_trades_committed_total",
        "counter",
        "Trades committed to trade_tick.",
        "trades_committed",
    ),
    (
        "ingest_sidecar_lag_seconds",
        "gauge",
        "Seconds from receiving the last committed trade to its commit.",
        "lag_s",
    ),
    ("ingest_sidecar_reconnects_total", "counter", "Websocket reconnects.", "reconnects"),
    ("ingest_sidecar_gaps_total", "counter", "Gaps found in trade ids.", "gaps_found"),
    (
        "ingest_sidecar_book_resyncs_total",
        "counter",
        "Order books rebuilt from a new snapshot (gap, stale snapshot, reconnect).",
        "resyncs",
    ),
    (
        "ingest_sidecar_gap_trades_missing_total",
        "counter",
        "Trade ids the gaps held.",
        "gap_trades_missing",
    ),
    (
        "ingest_sidecar_gap_trades_filled_total",
        "counter",
        "Trades written from the REST history to fill gaps.",
        "gap_trades_filled",
    ),
    (
        "ingest_sidecar_dead_letters_total",
        "counter",
        "Frames sent to dead_letter.",
        "dead_letters",
    ),
    (
        "ingest_sidecar_dropped_not_owner_total",
        "counter",
        "Rows dropped because the shard's lease was lost.",
        "dropped_not_owner",
    ),
    (
        "ingest_sidecar_spool_bytes",
        "gauge",
        "Bytes in the shard's disk spool (database down).",
        "spool_bytes",
    ),
    ("ingest_sidecar_shard_owned", "gauge", "1 while this replica runs the shard.", "owned"),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def _writer_restarts(sidecar: Any) -> int:
    return sum(getattr(w, "restarts", 0) for w in list(sidecar.writers.values()))


def render_metrics(sidecar: Any) -> str:
    """The sidecar's metrics in the Prometheus text format."""
    shards = sidecar.shard_counters()
    lines: list[str] = []
    for name, kind, help_text, field in _SHARD_METRICS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for key, values in sorted(shards.items()):
            if field in values:
                labels = f'feed="{_label(worker_of(key))}",shard="{_label(key)}"'
                lines.append(f"{name}{{{labels}}} {_number(values[field])}")
    owned: dict[str, int] = dict.fromkeys(sidecar.classes, 0)
    for key in list(sidecar.engines):
        owned[worker_of(key)] = owned.get(worker_of(key), 0) + 1
    lines += [
        "# HELP ingest_sidecar_owned_shards Shards this replica runs, per feed.",
        "# TYPE ingest_sidecar_owned_shards gauge",
        *(f'ingest_sidecar_owned_shards{{feed="{_label(f)}"}} {n}' for f, n in owned.items()),
        "# HELP ingest_sidecar_live_replicas Sidecar replicas with a fresh heartbeat on Redis.",
        "# TYPE ingest_sidecar_live_replicas gauge",
        f"ingest_sidecar_live_replicas {len(sidecar.live_replicas or [])}",
        "# HELP ingest_sidecar_writer_restarts_total Times a writer process died and was restarted.",
        "# TYPE ingest_sidecar_writer_restarts_total counter",
        f"ingest_sidecar_writer_restarts_total {_writer_restarts(sidecar)}",
        "# HELP ingest_sidecar_replica_spool_bytes Bytes in every disk spool of this replica.",
        "# TYPE ingest_sidecar_replica_spool_bytes gauge",
        f"ingest_sidecar_replica_spool_bytes {sidecar.spool_bytes()}",
    ]
    return "\n".join(lines) + "\n"


class Probes:
    """The checks behind `/healthz` and `/readyz`."""

    def __init__(self, sidecar: Any):
        self.sidecar = sidecar
        self._db_lock = threading.Lock()
        self._db_checked: dict[str, tuple[float, str | None]] = {}

    def alive(self) -> bool:
        """The supervisor ticked recently (it is not stuck). Generous: a tick that hands several
        shards over waits for their engines and writers (seconds each)."""
        last = self.sidecar.last_tick_at
        limit = max(ALIVE_LIMIT_S, 10 * self.sidecar.options.tick_s)
        return last is not None and time.monotonic() - last < limit

    def writers(self) -> str | None:
        """None unless a writer process keeps dying (see `ProcessWriter.crash_loop`)."""
        for writer in list(self.sidecar.writers.values()):
            failing = getattr(writer, "crash_loop", lambda: None)()
            if failing:
                return failing
        return None

    def ownership(self) -> str | None:
        """None when this replica owns or stands by correctly, else why not."""
        sidecar = self.sidecar
        for key, engine in list(sidecar.engines.items()):
            if not engine.alive:
                return f"{key}: the feed thread ended"
            if not sidecar.ownership.owns(key):
                return f"{key}: running without a fresh lease"
        if isinstance(sidecar.ownership, LocalOwnership):
            return None
        beat = sidecar.last_beat_at
        if beat is None or time.monotonic() - beat > sidecar.options.replica_ttl_s:
            return "no fresh heartbeat on Redis (cannot own or stand by)"
        return None

    def database(self) -> str | None:
        """None when every database the sidecar writes to answers `SELECT 1`, else the error."""
        urls = {self.sidecar.control_url, *self.sidecar.writers}
        for url in sorted(urls):
            error = self._check(url)
            if error:
                return error
        return None

    def _check(self, url: str) -> str | None:
        now = time.monotonic()
        with self._db_lock:
            cached = self._db_checked.get(url)
            if cached and now - cached[0] < DB_CHECK_CACHE_S:
                return cached[1]
            try:
                with get_engine(url).connect() as conn:
                    conn.execute(text("SELECT 1"))
                error = None
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                first_line = redact(str(exc).splitlines()[0] if str(exc) else "")
                error = f"database unreachable: {type(exc).__name__}: {first_line}"
            self._db_checked[url] = (time.monotonic(), error)
            return error

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the sidecar is ready (supervisor, ownership, database), with each check's
        verdict."""
        checks: dict[str, str] = {}
        checks["supervisor"] = "ok" if self.alive() else "the supervisor loop is stuck"
        checks["writer"] = self.writers() or "ok"
        checks["ownership"] = self.ownership() or "ok"
        checks["database"] = self.database() or "ok"
        checks["spool"] = (
            "growing (the database is not keeping up)"
            if self.sidecar.spool_growing(SPOOL_WINDOW_S)
            else "ok"
        )
        ready = all(v == "ok" for v in checks.values())
        body = {
            "ready": ready,
            "checks": checks,
            "owned_shards": sorted(self.sidecar.engines),
            "live_replicas": len(self.sidecar.live_replicas or []),
        }
        return ready, body


class HealthServer:
    """The HTTP endpoints (see module doc); `start()` serves in a daemon thread."""

    def __init__(self, sidecar: Any, host: str, port: int):
        self.probes = Probes(sidecar)
        self.sidecar = sidecar
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self.address = self._server.server_address
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sidecar-http", daemon=True
        )

    def start(self) -> HealthServer:
        """Serve /healthz, /readyz and /metrics on a background thread."""
        self._thread.start()
        logger.info("health and metrics on http://{}:{}", *self.address[:2])
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0]
                try:
                    status, kind, body = server.respond(path)
                except Exception as exc:  # noqa: BLE001 - a probe must answer, not hang
                    status, kind, body = 500, "text/plain", f"error: {type(exc).__name__}\n"
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # probes every few seconds: not worth a log line
                pass

        return Handler

    def respond(self, path: str) -> tuple[int, str, str]:
        """(status, content type, body) for a GET of `path`."""
        if path == "/healthz":
            if not self.probes.alive():
                return 503, "text/plain", "stuck\n"
            failing = self.probes.writers()
            return (503, "text/plain", failing + "\n") if failing else (200, "text/plain", "ok\n")
        if path == "/readyz":
            ready, body = self.probes.readiness()
            return (200 if ready else 503), "application/json", json.dumps(body) + "\n"
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", render_metrics(self.sidecar)
        return 404, "text/plain", "not found: /healthz, /readyz, /metrics\n"
