"""Gaps in consecutive trade ids: found by the engine, filled from the feed's REST history.

`GapTracker` lives on the connection thread: it knows the last id seen per symbol (seeded at start
from the highest id committed, so gaps across restarts are found too) and returns the missing
range when an id jumps. `GapFiller` is one thread per feed: it pages through the REST history
(`feed.history_request` / `feed.history_rows`), hands the rows to the same writer, retries
429/418/5xx with backoff (honouring Retry-After), and records what the history no longer has.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from loguru import logger

from ingestion_pipelines.core.retry import Backoff, is_retryable_status, parse_retry_after
from ingestion_pipelines.core.url_policy import CRAWL_SCHEMES, SafeRedirectHandler, check_url
from ingestion_pipelines.feeds.protocol import BROWSER_USER_AGENT

MAX_UNFILLED_KEPT = 50


class GapTracker:
    """Last trade id per symbol; `observe` returns the (first, last) missing ids, or None."""

    def __init__(self, baseline: dict[str, int] | None = None):
        self.last: dict[str, int] = dict(baseline or {})

    def observe(self, symbol: str, trade_id: int) -> tuple[int, int] | None:
        """Note a trade id; the missing range (first, last) when it jumps past the next expected id."""
        last = self.last.get(symbol)
        if last is None or trade_id > last:
            self.last[symbol] = trade_id
        if last is not None and trade_id > last + 1:
            return last + 1, trade_id - 1
        return None


@dataclass
class GapStats:
    """Counters of one feed's gap filling (found, missing, filled, unfilled, pending)."""

    found: int = 0  # gaps detected
    missing: int = 0  # trade ids those gaps held
    filled: int = 0  # trades written from the REST history
    unfilled: int = 0  # trade ids the history could not give
    unfilled_ranges: list[list[Any]] = field(default_factory=list)  # [symbol, first, last, why]
    pending: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The counters as `worker_state` details."""
        return {
            "gaps_found": self.found,
            "gap_trades_missing": self.missing,
            "gap_trades_filled": self.filled,
            "gap_trades_unfilled": self.unfilled,
            "unfilled_ranges": list(self.unfilled_ranges),
            "gaps_pending": self.pending,
        }


class GapFiller:
    """Fills gaps of one feed from its REST history, on its own thread."""

    def __init__(
        self,
        feed_id: str,
        feed: Any,
        settings: Callable[[], Any],
        submit: Callable[[list[dict[str, Any]]], bool],
        *,
        max_attempts: int = 6,
    ):
        self.feed_id = feed_id
        self.feed = feed
        self.settings = settings
        self.submit = submit
        self.max_attempts = max_attempts
        self.stats = GapStats()
        self.log = logger.bind(worker_id=feed_id)
        self._tasks: queue.Queue[tuple[str, int, int] | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"gaps-{feed_id}", daemon=True)
        self._idle = threading.Event()
        self._idle.set()

    def start(self) -> GapFiller:
        """Start the filler's thread."""
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the filler's thread (pending gaps stay unfilled)."""
        self._stop.set()
        self._tasks.put(None)
        self._thread.join(timeout_s)

    def request(self, symbol: str, first: int, last: int) -> None:
        """Queue the fetch of trade ids first..last of `symbol` from the REST history."""
        self.stats.found += 1
        self.stats.missing += last - first + 1
        self.stats.pending += 1
        self._idle.clear()
        self.log.warning(
            "gap in {} trade ids {}..{} ({} trades): filling from REST",
            symbol,
            first,
            last,
            last - first + 1,
        )
        self._tasks.put((symbol, first, last))

    def _run(self) -> None:
        while not self._stop.is_set():
            task = self._tasks.get()
            if task is None:
                continue
            try:
                self._fill(*task)
            except Exception as exc:  # noqa: BLE001 - recorded, the feed goes on
                self._unfilled(task[0], task[1], task[2], f"error: {exc}")
            finally:
                self.stats.pending -= 1
                if self._tasks.empty():
                    self._idle.set()

    def _unfilled(self, symbol: str, first: int, last: int, why: str) -> None:
        self.stats.unfilled += last - first + 1
        self.stats.unfilled_ranges.append([symbol, first, last, why])
        del self.stats.unfilled_ranges[:-MAX_UNFILLED_KEPT]
        self.log.error(
            "gap in {} trade ids {}..{} could not be filled: {}", symbol, first, last, why
        )

    def _fill(self, symbol: str, first: int, last: int) -> None:
        limit = getattr(self.feed, "history_limit", 1000)
        next_id = first
        while next_id <= last and not self._stop.is_set():
            settings = self.settings()
            url = self.feed.history_request(
                settings, symbol, next_id, min(limit, last - next_id + 1)
            )
            payload = self._get(url, settings.timeout_s, settings.proxy)
            if payload is None:
                self._unfilled(
                    symbol, next_id, last, "REST history unavailable (retries exhausted)"
                )
                return
            rows = [
                r
                for r in self.feed.history_rows(symbol, payload, datetime.now(UTC))
                if next_id <= r["trade_id"] <= last
            ]
            if not rows:
                self._unfilled(symbol, next_id, last, "not in the REST history any more")
                return
            if rows[0]["trade_id"] > next_id:
                self._unfilled(
                    symbol, next_id, rows[0]["trade_id"] - 1, "not in the REST history any more"
                )
            while not self.submit(rows):
                if self._stop.is_set():
                    return
            self.stats.filled += len(rows)
            next_id = rows[-1]["trade_id"] + 1
            rate = settings.rate_limit_per_s
            if rate and next_id <= last:
                time.sleep(1 / rate)
        if next_id > last:
            self.log.info("gap in {} trade ids {}..{} filled", symbol, first, last)

    def _get(self, url: str, timeout_s: float, proxy: str | None = None) -> bytes | None:
        return rest_get(
            url, timeout_s, proxy, stop=self._stop, max_attempts=self.max_attempts, log=self.log
        )


def rest_get(
    url: str,
    timeout_s: float,
    proxy: str | None,
    *,
    stop: threading.Event,
    max_attempts: int,
    log: Any,
    what: str = "REST history",
) -> bytes | None:
    """GET `url` (a source's REST document: trade history, depth snapshot) with retries of
    429/418/5xx and unreachable hosts (backoff, Retry-After honoured); None when the retries are
    exhausted or `stop` is set; `RuntimeError` for an answer that retrying cannot change."""
    backoff = Backoff(base_s=0.5, cap_s=10.0)
    handlers = [urllib.request.ProxyHandler({"http": proxy, "https": proxy})] if proxy else []
    opener = urllib.request.build_opener(*handlers, SafeRedirectHandler())
    check_url(url, CRAWL_SCHEMES, f"{what} URL")
    for attempt in range(1, max_attempts + 1):
        request = urllib.request.Request(url, headers={"User-Agent": BROWSER_USER_AGENT})
        try:
            with opener.open(request, timeout=timeout_s) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            if not is_retryable_status(exc.code):
                body = exc.read()[:300].decode(errors="replace")
                raise RuntimeError(f"HTTP {exc.code} from the {what}: {body}") from None
            wait = backoff.next(parse_retry_after(exc.headers.get("Retry-After")))
            log.warning(
                "{} answered {} (attempt {}), retrying in {:.1f} s", what, exc.code, attempt, wait
            )
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            wait = backoff.next()
            log.warning("{} unreachable ({}), retrying in {:.1f} s", what, exc, wait)
        if stop.wait(wait):
            return None
    return None


class FirstSeen:
    """The first trade id ever received per symbol, kept on disk (fsynced) before that trade is
    queued. A sidecar killed before it committed anything for a symbol resumes from there (the
    REST history fills the rest) instead of from whatever the stream sends after the restart."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.ids: dict[str, int] = {}
        if self.path.exists():
            try:
                self.ids = {str(k): int(v) for k, v in orjson.loads(self.path.read_bytes()).items()}
            except (ValueError, TypeError):
                self.ids = {}

    def record(self, symbol: str, trade_id: int) -> None:
        """Keep `trade_id` as the symbol's first (fsynced) unless one is already kept."""
        if symbol in self.ids:
            return
        self.ids[symbol] = trade_id
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(orjson.dumps(self.ids))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
