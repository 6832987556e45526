"""The books of one depth connection: frames in, snapshot requests, resyncs and book snapshots out.

Still no I/O: the caller (the sidecar, once `binance_depth` is registered) reads frames and feeds
them here, fetches the REST snapshots this asks for (`DepthStep.need_snapshot`, one request per
symbol in flight, and only once the symbol's first diff event is buffered, as Binance's procedure
orders it), records every `Resync`, and writes the `BookSnapshot` rows `due_snapshots` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ingestion_pipelines.feeds.binance.depth import (
    DEFAULT_MAX_BUFFER,
    MAX_SNAPSHOT_LEVELS,
    BookSnapshot,
    LocalOrderBook,
    Resync,
    parse_depth_event,
    parse_depth_snapshot,
    stream_name,
)
from ingestion_pipelines.feeds.protocol import ParseError

MAX_STREAMS_PER_CONNECTION = 1024  # Binance: "a single connection can listen to 1024 streams"


def stream_url(base_url: str, symbols: list[str]) -> str:
    """The combined-stream URL of the diff-depth streams of `symbols` (one connection)."""
    if not symbols:
        raise ValueError("no symbol to subscribe to")
    if len(symbols) > MAX_STREAMS_PER_CONNECTION:
        raise ValueError(
            f"{len(symbols)} streams exceed Binance's {MAX_STREAMS_PER_CONNECTION} a connection"
        )
    return f"{base_url.rstrip('/')}/stream?streams=" + "/".join(stream_name(s) for s in symbols)


@dataclass(slots=True)
class DepthStep:
    """What the caller must do after one input: record the resyncs, request the snapshots."""

    resyncs: list[Resync] = field(default_factory=list)
    need_snapshot: list[str] = field(default_factory=list)
    event_time_ms: int | None = None  # the diff event's `E` (exchange clock), when one was read


class DepthBooks:
    """One `LocalOrderBook` per symbol of a connection, and the snapshot cadence.

    A book snapshot is due every `snapshot_ms` for each synced book whose update id moved since
    its last snapshot (an unchanged book would repeat the same row).
    """

    def __init__(
        self,
        symbols: list[str],
        *,
        depth: int = 20,
        snapshot_ms: int = 1000,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        max_levels: int = MAX_SNAPSHOT_LEVELS,
    ) -> None:
        if depth < 1 or snapshot_ms < 1:
            raise ValueError("depth and snapshot_ms must be positive")
        self.depth = depth
        self.interval = timedelta(milliseconds=snapshot_ms)
        self.books = {
            s.upper(): LocalOrderBook(s, max_buffer=max_buffer, max_levels=max_levels)
            for s in symbols
        }
        self._requested: set[str] = set()
        self._last_taken: dict[str, tuple[datetime, int]] = {}

    def on_frame(self, raw: bytes | str, at: datetime) -> DepthStep:
        """One websocket frame (a `depthUpdate`, raw or combined); `ParseError` if unreadable."""
        event = parse_depth_event(raw)
        book = self.books.get(event.symbol.upper())
        if book is None:
            raise ParseError(f"depthUpdate for {event.symbol}, not subscribed here")
        step = DepthStep(event_time_ms=event.event_time_ms)
        self._record(step, book.on_event(event, at))
        self._ask_if_needed(step, book)
        return step

    def on_snapshot(self, symbol: str, payload: bytes | str, at: datetime) -> DepthStep:
        """The REST snapshot asked for `symbol` arrived (or its error body: `ParseError`)."""
        book = self.books[symbol.upper()]
        self._requested.discard(book.symbol)
        step = DepthStep()
        self._record(step, book.on_snapshot(parse_depth_snapshot(symbol, payload), at))
        self._ask_if_needed(step, book)
        return step

    def snapshot_failed(self, symbol: str) -> None:
        """The REST snapshot could not be fetched: it may be asked for again."""
        self._requested.discard(symbol.upper())

    def on_disconnect(self, at: datetime) -> DepthStep:
        """The connection was lost: every book resynchronises from new snapshots."""
        self._requested.clear()
        return DepthStep(resyncs=[book.on_disconnect(at) for book in self.books.values()])

    def due_snapshots(self, at: datetime) -> list[BookSnapshot]:
        """The book snapshots to write now (synced books, changed, `snapshot_ms` since the last)."""
        due = []
        for symbol, book in self.books.items():
            if not book.synced:
                continue
            last = self._last_taken.get(symbol)
            if last is not None and (
                at - last[0] < self.interval or last[1] == book.last_update_id
            ):
                continue
            taken = book.top(self.depth, at)
            self._last_taken[symbol] = (at, taken.last_update_id)
            due.append(taken)
        return due

    @staticmethod
    def _record(step: DepthStep, resync: Resync | None) -> None:
        if resync is not None:
            step.resyncs.append(resync)

    def _ask_if_needed(self, step: DepthStep, book: LocalOrderBook) -> None:
        if book.needs_snapshot and book.buffered and book.symbol not in self._requested:
            self._requested.add(book.symbol)
            step.need_snapshot.append(book.symbol)
