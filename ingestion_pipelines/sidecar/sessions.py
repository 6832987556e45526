"""Stateful feeds (order books): the engine's side of a feed session.

A feed that keeps state across frames (`binance_depth`: one local order book per symbol) declares
`open_session(settings)`, returning an object with

- `parse(raw, received_at) -> Parsed`: one frame (rows: e.g. resynchronisations);
- `requests() -> list[(key, url)]`: REST documents it needs now (depth snapshots);
- `on_response(key, payload, at) -> Parsed` / `request_failed(key)`: a document arrived / could
  not be fetched (it may be asked for again);
- `tick(at) -> Parsed`: rows due by time (book snapshots every `snapshot_ms`);
- `on_disconnect(at) -> Parsed`: the connection was lost (every book resynchronises);
- `stats() -> dict`: counters for the feed's health (`worker_state.details`).

`FeedSession` runs it on the connection thread (the session is never shared with another
thread) and fetches the documents on its own thread with the REST retry rules of the gap filler
(`gaps.rest_get`), one at a time and at most `rate_limit_per_s`; answers come back through a
queue the connection thread drains (`pump`).
"""

from __future__ import annotations

import queue
import threading
import time
from datetime import UTC, datetime
from typing import Any

from ingestion_pipelines.core.redaction import redact_url
from ingestion_pipelines.feeds.protocol import Parsed, ParseError
from ingestion_pipelines.sidecar.gaps import rest_get

PUMP_INTERVAL_S = 0.01  # how often the connection thread looks at answers and the snapshot timer


class FeedSession:
    """One engine's feed session and its REST fetcher thread (see module doc)."""

    def __init__(self, engine: Any, feed: Any, *, max_attempts: int = 6) -> None:
        self.engine = engine
        self.feed = feed
        self.max_attempts = max_attempts
        self.state: Any = None
        self._settings: Any = None
        self._requests: queue.Queue[tuple[Any, str, Any] | None] = queue.Queue()
        self._answers: queue.Queue[tuple[Any, bytes | None, str | None]] = queue.Queue()
        self._stop = threading.Event()
        self._last_pump = 0.0
        self.fetched = 0
        self.fetch_failures = 0
        self._thread = threading.Thread(
            target=self._fetch_loop, name=f"rest-{engine.feed_id}", daemon=True
        )

    # ---- lifecycle (engine) --------------------------------------------------------------------
    def start(self) -> None:
        """Start the fetcher thread."""
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop the fetcher thread (a document in flight is dropped)."""
        self._stop.set()
        self._requests.put(None)
        self._thread.join(timeout_s)

    def connecting(self, settings: Any) -> None:
        """Before each connection: a new session when the settings changed (new symbols)."""
        if self.state is None or settings != self._settings:
            self.state = self.feed.open_session(settings)
            self._settings = settings

    # ---- on the connection thread --------------------------------------------------------------
    def parse(self, raw: bytes | str, received_at: datetime) -> Parsed:
        """One frame through the session; the documents it now needs are requested."""
        parsed = self.state.parse(raw, received_at)
        self._ask()
        return parsed

    def pump(self) -> str | None:
        """Answers in, timers run, rows queued (at most every `PUMP_INTERVAL_S`); why the
        connection must end (writer full), else None."""
        now = time.monotonic()
        if now - self._last_pump < PUMP_INTERVAL_S:
            return None
        self._last_pump = now
        while True:
            try:
                key, payload, error = self._answers.get_nowait()
            except queue.Empty:
                break
            reason = self._answered(key, payload, error)
            if reason is not None:
                return reason
        self._ask()
        at = datetime.now(UTC)
        return self.engine.store(self.state.tick(at), None, at)

    def disconnected(self) -> None:
        """The connection ended: the session's losses (resynchronisations) are stored."""
        if self.state is None:
            return
        at = datetime.now(UTC)
        why = self.engine.store(self.state.on_disconnect(at), None, at)
        if why is not None:  # (the books rebuild all the same; only their record is missing)
            self.engine.log.error("resynchronisations after a disconnect not stored: {}", why)

    def stats(self) -> dict[str, Any]:
        """The session's counters and the fetcher's."""
        out = dict(self.state.stats()) if self.state is not None else {}
        out["rest_fetched"] = self.fetched
        out["rest_fetch_failures"] = self.fetch_failures
        return out

    def _answered(self, key: Any, payload: bytes | None, error: str | None) -> str | None:
        at = datetime.now(UTC)
        if payload is None:
            self.fetch_failures += 1
            self.engine.log.warning("REST document for {} not fetched: {}", key, error)
            self.state.request_failed(key)
            return None
        self.fetched += 1
        try:
            parsed = self.state.on_response(key, payload, at)
        except ParseError as exc:
            self.state.request_failed(key)
            self.engine.dead_letter(payload, f"REST document for {key}: {exc}", at)
            return None
        return self.engine.store(parsed, None, at)

    def _ask(self) -> None:
        for key, url in self.state.requests():
            self._requests.put((key, url, self._settings))

    # ---- the fetcher thread --------------------------------------------------------------------
    def _fetch_loop(self) -> None:
        while not self._stop.is_set():
            task = self._requests.get()
            if task is None:
                continue
            key, url, settings = task
            try:
                payload = rest_get(
                    url,
                    settings.timeout_s,
                    settings.proxy,
                    stop=self._stop,
                    max_attempts=self.max_attempts,
                    log=self.engine.log,
                    what="REST snapshot",
                )
                error = None if payload is not None else "retries exhausted"
            except Exception as exc:  # noqa: BLE001 - recorded; the session asks again
                payload, error = None, f"{redact_url(url)}: {exc}"
            self._answers.put((key, payload, error))
            rate = settings.rate_limit_per_s
            if rate:  # the source's request budget (Binance: weight per minute per IP)
                self._stop.wait(1 / rate)
