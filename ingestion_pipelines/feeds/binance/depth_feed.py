"""`binance_depth`: Binance Spot local order books (`<symbol>@depth@100ms`), the top `depth`
levels stored every `snapshot_ms` in `order_book_snapshot`, every resynchronisation in
`order_book_resync`.

The books follow Binance's documented procedure (`depth.py`); the sidecar runs the feed's
session (`open_session`, see `ingestion_pipelines.sidecar.sessions`): frames go to the books,
the REST snapshots they ask for (`GET /api/v3/depth`) are fetched beside the connection, book
snapshots are taken on a timer, and a lost connection resynchronises every book.
"""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime
from typing import Any, ClassVar

import orjson
from pydantic import Field, field_validator

from ingestion_pipelines.config.workers import FeedSettings
from ingestion_pipelines.feeds.base import Feed
from ingestion_pipelines.feeds.binance.depth import (
    SNAPSHOT_LIMITS,
    Resync,
    parse_depth_event,
    snapshot_url,
)
from ingestion_pipelines.feeds.binance.depth_books import DepthBooks, DepthStep, stream_url
from ingestion_pipelines.feeds.protocol import NOTHING, Parsed
from ingestion_pipelines.storage.table_policy import BOOK_RESYNCS, BOOK_SNAPSHOTS

SOURCE = "binance"
MAX_RESYNCS_KEPT = 20  # the latest resynchronisations shown in the feed's health
LATENCY_SAMPLES = 10_000  # the latest diff events' event-to-applied times


class BinanceDepthSettings(FeedSettings):
    """Where and what the Binance depth feed subscribes to, and how often books are stored."""

    base_url: str = "wss://stream.binance.com:9443"
    rest_base_url: str = "https://api.binance.com"
    symbols: list[str] = Field(default_factory=lambda: ["btcusdt", "ethusdt"])
    snapshot_ms: int = Field(1000, ge=100, le=3_600_000)  # one stored book per symbol this often
    depth: int = Field(20, ge=1, le=1000)  # levels per side in each stored book
    snapshot_limit: int = 1000  # levels per side asked of the REST snapshot
    # REST snapshots a second: Binance allows 6,000 request weight a minute per IP and a
    # 1,000-level snapshot weighs 50 (120 a minute); half of that, the rest left to the trades'
    # gap filling on the same IP
    rate_limit_per_s: float | None = Field(1.0, gt=0, le=100)
    symbol_pattern: ClassVar[str] = r"[A-Za-z0-9]{5,20}"

    @field_validator("snapshot_limit")
    @classmethod
    def _documented_limit(cls, value: int) -> int:
        if value not in SNAPSHOT_LIMITS:
            raise ValueError(f"must be one of {SNAPSHOT_LIMITS}")
        return value


class DepthSession:
    """The books of one connection (shard) and what the sidecar must do for them."""

    def __init__(self, settings: BinanceDepthSettings) -> None:
        self.settings = settings
        self.books = DepthBooks(
            settings.symbols,
            depth=settings.depth,
            snapshot_ms=settings.snapshot_ms,
            max_levels=max(settings.snapshot_limit, settings.depth),
        )
        self._wanted: list[str] = []
        self.resyncs = 0
        self.resyncs_by_reason: dict[str, int] = {}
        self.latest_resyncs: list[dict[str, Any]] = []
        self.snapshots_taken = 0
        # from each diff's `E` (the exchange's clock) to the event applied here (ours): on one
        # host (the stand-ins) the delivery and apply time; live, clock skew is in it too
        self.latencies_ms: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        # from the frame's arrival (taken off the socket by the engine) to the event applied
        self.arrival_latencies_ms: deque[float] = deque(maxlen=LATENCY_SAMPLES)

    def parse(self, raw: bytes | str, received_at: datetime) -> Parsed:
        """One frame: a diff event for a book, or a control reply."""
        control = _control(raw)
        if control is not None:
            return control
        step = self.books.on_frame(raw, received_at)
        applied_ms = time.time() * 1000
        if step.event_time_ms is not None:
            self.latencies_ms.append(applied_ms - step.event_time_ms)
        self.arrival_latencies_ms.append(applied_ms - received_at.timestamp() * 1000)
        return self._step(step)

    def requests(self) -> list[tuple[str, str]]:
        """The REST snapshots to fetch now, by symbol."""
        wanted, self._wanted = self._wanted, []
        base = self.settings.rest_base_url
        return [(s, snapshot_url(base, s, self.settings.snapshot_limit)) for s in wanted]

    def on_response(self, symbol: str, payload: bytes, at: datetime) -> Parsed:
        """The REST snapshot of `symbol` arrived."""
        return self._step(self.books.on_snapshot(symbol, payload, at))

    def request_failed(self, symbol: str) -> None:
        """The snapshot could not be fetched: asked for again at the next event."""
        self.books.snapshot_failed(symbol)

    def tick(self, at: datetime) -> Parsed:
        """The book snapshots due now."""
        due = self.books.due_snapshots(at)
        if not due:
            return NOTHING
        self.snapshots_taken += len(due)
        return Parsed({BOOK_SNAPSHOTS.table: [snapshot.as_row() for snapshot in due]})

    def on_disconnect(self, at: datetime) -> Parsed:
        """The connection was lost: every book resynchronises."""
        return self._step(self.books.on_disconnect(at))

    def stats(self) -> dict[str, Any]:
        """The books' state for the feed's health."""
        books = self.books.books.values()
        return {
            "books_synced": sum(book.synced for book in books),
            "books": len(self.books.books),
            "book_events_applied": sum(book.applied_events for book in books),
            "book_events_stale": sum(book.stale_events for book in books),
            "book_snapshots_taken": self.snapshots_taken,
            "resyncs": self.resyncs,
            "resyncs_by_reason": dict(self.resyncs_by_reason),
            "latest_resyncs": list(self.latest_resyncs),
            **_percentiles("book_event_to_applied_ms", self.latencies_ms),
            **_percentiles("book_arrival_to_applied_ms", self.arrival_latencies_ms),
        }

    def _step(self, step: DepthStep) -> Parsed:
        self._wanted.extend(step.need_snapshot)
        if not step.resyncs:
            return NOTHING
        for resync in step.resyncs:
            self._count(resync)
        return Parsed({BOOK_RESYNCS.table: [resync.as_row() for resync in step.resyncs]})

    def _count(self, resync: Resync) -> None:
        self.resyncs += 1
        self.resyncs_by_reason[resync.reason] = self.resyncs_by_reason.get(resync.reason, 0) + 1
        row = resync.as_row()
        row["at"] = resync.at.isoformat()
        self.latest_resyncs.append(row)
        del self.latest_resyncs[:-MAX_RESYNCS_KEPT]


def _percentiles(name: str, samples: deque[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)  # noqa: E731
    return {f"{name}_p50": pick(0.5), f"{name}_p99": pick(0.99)}


def _control(raw: bytes | str) -> Parsed | None:
    """A frame that is not a diff event: a control reply (`{"result":null,"id":1}`: nothing) or a
    server shutdown (reconnect); None for anything else (read as a diff event)."""
    head = raw[:80]
    if (b"depthUpdate" in head) if isinstance(head, bytes) else ("depthUpdate" in head):
        return None
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict):
        return None
    if message.get("e") == "serverShutdown":
        return Parsed(reconnect="serverShutdown")
    if "id" in message and "result" in message:
        return NOTHING
    return None


class BinanceDepth(Feed):
    """Binance Spot order books kept from diff-depth streams (see module doc)."""

    worker_id = "binance_depth"
    description = (
        "Binance Spot local order books (diff depth, documented procedure): top-N levels every "
        "snapshot_ms, every resynchronisation recorded"
    )
    policies = (BOOK_SNAPSHOTS, BOOK_RESYNCS)
    Settings = BinanceDepthSettings

    source = SOURCE
    headers: dict[str, str] = {}
    max_connection_age_s = 23.5 * 3600  # the server cuts every connection at 24 h
    consecutive_ids = False  # the books check their own update ids

    @staticmethod
    def url(settings: BinanceDepthSettings) -> str:
        """The combined-stream URL of the symbols' diff-depth streams."""
        return stream_url(settings.base_url, list(settings.symbols))

    @staticmethod
    def subscribe_messages(settings: BinanceDepthSettings) -> list[str]:
        """None: the streams are in the URL."""
        return []

    @staticmethod
    def open_session(settings: BinanceDepthSettings) -> DepthSession:
        """The books of one connection (the sidecar's feed session)."""
        return DepthSession(settings)

    @staticmethod
    def parse(raw: bytes, received_at: datetime) -> Parsed:
        """Stateless reading of one frame (the session keeps the books): a control reply or a
        server shutdown is understood, a diff event is checked; nothing is stored from here."""
        control = _control(raw)
        if control is not None:
            return control
        parse_depth_event(raw)
        return NOTHING
