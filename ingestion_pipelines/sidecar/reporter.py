"""Reports what the sidecar did to Dagster, over the webserver's HTTP API, without ever blocking
or failing the feed.

    reporter = DagsterReporter(settings.dagster_url).start()
    reporter.report_materialization("binance_trades", "2025-06-01", {"rows": 812, "symbols": 2})
    reporter.heartbeat("binance_trades", "running", {"connected": True})
    ...
    reporter.stop(timeout_s=3)  # flushes what is pending

Both report methods only enqueue (bounded queue: when full, the oldest event is dropped and
counted). A background thread posts the events in order; a transient failure (connection
refused, timeout, HTTP 5xx/408/429) is retried with exponential backoff, the event staying at
the head of the queue; an event the webserver refuses (other 4xx) is dropped and counted.

Which endpoint. Dagster 1.13's GraphQL mutation `reportRunlessAssetEvents` takes only
`eventType`, `assetKey`, `partitionKeys` and `description`: it cannot carry metadata. The same
webserver serves the external-asset REST endpoints `POST /report_asset_materialization/<key>`
and `POST /report_asset_observation/<key>` (JSON body: `partition`, `metadata`, `description`),
which record the same runless events *with* metadata, so those are used. Metadata values travel
as JSON: int -> IntMetadataValue, float -> FloatMetadataValue, bool -> BoolMetadataValue,
str -> TextMetadataValue, dict/list -> JsonMetadataValue. JSON has no timestamp type, so
datetimes and dates become ISO-8601 text (UTC); Decimals become exact text; None is left out.

Heartbeats. Liveness is judged by the `<worker_id>_feed` sensor from `worker_state` (which the
sidecar writes), so `heartbeat()` does not post on every call: it posts an `AssetObservation`
(status and details as metadata) only when the feed's status changes, so status transitions
(`running` -> `reconnecting` -> ...) are visible on the asset's timeline without flooding the
event log.
"""

import collections
import json
import math
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from loguru import logger

from ingestion_pipelines.core.redaction import redact
from ingestion_pipelines.core.retry import Backoff
from ingestion_pipelines.dagster_api.http import DagsterHttp, DagsterHttpError

# ---- metadata -----------------------------------------------------------------------------


def _utc_iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def metadata_value(value: Any) -> Any:
    """A JSON value that the webserver turns into the right Dagster metadata value."""
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime):
        return _utc_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping | list | tuple):
        return json.loads(json.dumps(value, default=str))
    return str(value)


def metadata_json(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Metadata as JSON for the report endpoints (None values left out, text redacted)."""
    out: dict[str, Any] = {}
    for key, value in (metadata or {}).items():
        if value is None:
            continue
        converted = metadata_value(value)
        out[str(key)] = redact(converted) if isinstance(converted, str) else converted
    return out


# ---- the reporter -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Event:
    path: str
    body: dict[str, Any]
    worker_id: str
    kind: str
    enqueued_at: float


class DagsterReporter:
    """Non-blocking reports of feed materializations and status to Dagster (see module doc).

    Counters (read any time): `sent`, `failures` (failed attempts, each retried), `rejected`
    (events the webserver refused, dropped), `dropped` (pushed out of a full queue), `unsent`
    (still queued when `stop` gave up), `pending` (queued now).
    """

    def __init__(
        self,
        dagster_url: str,
        *,
        timeout_s: float = 5.0,
        max_queue: int = 1000,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ):
        self.http = DagsterHttp(dagster_url, timeout_s=timeout_s)
        self.max_queue = max(1, int(max_queue))
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.sent = 0
        self.failures = 0
        self.rejected = 0
        self.dropped = 0
        self.unsent = 0
        self.last_error: str | None = None
        self._queue: collections.deque[_Event] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._deadline: float | None = None
        self._busy = False
        self._thread: threading.Thread | None = None
        self._statuses: dict[str, str] = {}
        self._failing_since: float | None = None

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> "DagsterReporter":
        """Start the sending thread (once); returns the reporter."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return self
            self._stopping.clear()
            self._deadline = None
            self._thread = threading.Thread(target=self._run, name="dagster-reporter", daemon=True)
            self._thread.start()
        logger.info("reporting feed events to Dagster at {}", self.http.display_url)
        return self

    def stop(self, timeout_s: float = 3.0) -> bool:
        """Send what is pending (for at most `timeout_s`), then stop. True when all was sent."""
        thread = self._thread
        with self._cond:
            self._deadline = time.monotonic() + timeout_s
            self._stopping.set()
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout_s + self.http.timeout_s + 1.0)
        with self._cond:
            left = len(self._queue)
            self._queue.clear()
            self.unsent += left
            self._thread = None
        if left:
            logger.warning(
                "Dagster reporter stopped with {} event(s) not sent to {} (last error: {})",
                left,
                self.http.display_url,
                self.last_error,
            )
        return left == 0

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the queue is empty and nothing is in flight (True) or the timeout passes."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True

    @property
    def pending(self) -> int:
        """Events queued and not yet sent."""
        return len(self._queue)

    def stats(self) -> dict[str, Any]:
        """Counters for the health endpoints and the sidecar's own report."""
        return {
            "sent": self.sent,
            "failures": self.failures,
            "rejected": self.rejected,
            "dropped": self.dropped,
            "unsent": self.unsent,
            "pending": self.pending,
            "last_error": self.last_error,
        }

    # ---- reporting (never blocks, never raises) -------------------------------------------
    def report_materialization(
        self,
        worker_id: str,
        partition: str | None,
        metadata: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> None:
        """Record that the sidecar wrote `partition` (an ICT day, "YYYY-MM-DD") of `worker_id`."""
        try:
            body: dict[str, Any] = {"metadata": metadata_json(metadata)}
            if partition is not None:
                body["partition"] = str(partition)
            if description:
                body["description"] = redact(description)
            self._enqueue(
                _Event(
                    f"report_asset_materialization/{urllib.parse.quote(worker_id, safe='')}",
                    body,
                    worker_id,
                    "materialization",
                    time.monotonic(),
                )
            )
        except Exception as exc:  # noqa: BLE001 - reporting must never hurt the feed
            logger.bind(worker_id=worker_id).warning(
                "materialization report not queued: {}", redact(str(exc))
            )

    def heartbeat(
        self, worker_id: str, status: str, details: Mapping[str, Any] | None = None
    ) -> None:
        """Note the feed's status; an observation is posted only when the status changes."""
        try:
            with self._cond:
                if self._statuses.get(worker_id) == status:
                    return
                self._statuses[worker_id] = status
            metadata = {"status": status, **{f"details.{k}": v for k, v in (details or {}).items()}}
            self._enqueue(
                _Event(
                    f"report_asset_observation/{urllib.parse.quote(worker_id, safe='')}",
                    {
                        "metadata": metadata_json(metadata),
                        "description": f"{worker_id} status: {status}",
                    },
                    worker_id,
                    "observation",
                    time.monotonic(),
                )
            )
        except Exception as exc:  # noqa: BLE001
            logger.bind(worker_id=worker_id).warning("heartbeat not queued: {}", redact(str(exc)))

    def _enqueue(self, event: _Event) -> None:
        with self._cond:
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.dropped += 1
                if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                    logger.warning(
                        "Dagster reporter queue full ({}): {} oldest event(s) dropped so far",
                        self.max_queue,
                        self.dropped,
                    )
            self._queue.append(event)
            self._cond.notify_all()

    # ---- the sending thread ---------------------------------------------------------------
    def _past_deadline(self, margin: float = 0.0) -> bool:
        return self._deadline is not None and time.monotonic() + margin >= self._deadline

    def _run(self) -> None:
        backoff = Backoff(self.backoff_initial_s, self.backoff_max_s)
        while True:
            with self._cond:
                while not self._queue and not self._stopping.is_set():
                    self._cond.wait(1.0)
                if not self._queue or self._past_deadline():
                    return
                event = self._queue[0]
                self._busy = True
            outcome = "retry"
            try:
                outcome = self._send(event)
            finally:
                with self._cond:
                    if outcome != "retry" and self._queue and self._queue[0] is event:
                        self._queue.popleft()
                    self._busy = False
                    self._cond.notify_all()
            if outcome != "retry":
                backoff.reset()
                continue
            # Transient failure: wait (interruptibly) and try the same event again.
            wait = backoff.next()
            if self._deadline is not None:
                wait = min(wait, max(0.0, self._deadline - time.monotonic()))
            if self._stopping.is_set():
                if self._past_deadline(wait):
                    return
                time.sleep(wait)
            else:
                self._stopping.wait(wait)  # stop() cuts the wait short to flush

    def _send(self, event: _Event) -> str:
        try:
            self.http.post_json(event.path, event.body)
        except DagsterHttpError as exc:
            self.last_error = str(exc)
            if not exc.transient:
                self.rejected += 1
                logger.bind(worker_id=event.worker_id).warning(
                    "Dagster refused the {} report of {}: {}", event.kind, event.worker_id, exc
                )
                return "rejected"
            self.failures += 1
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                logger.bind(worker_id=event.worker_id).warning(
                    "Dagster not reachable, reports are queued and retried ({} pending): {}",
                    self.pending,
                    exc,
                )
            elif self.failures % 50 == 0:
                logger.warning(
                    "Dagster still not reachable after {} attempts ({} pending): {}",
                    self.failures,
                    self.pending,
                    exc,
                )
            return "retry"
        except Exception as exc:  # noqa: BLE001 - a bug here must not kill the thread
            self.rejected += 1
            self.last_error = redact(f"{type(exc).__name__}: {exc}")
            logger.exception("Dagster report failed unexpectedly: {}", self.last_error)
            return "rejected"
        if self._failing_since is not None:
            logger.info(
                "Dagster reachable again after {:.0f} s; sending queued reports",
                time.monotonic() - self._failing_since,
            )
            self._failing_since = None
        self.sent += 1
        return "sent"
