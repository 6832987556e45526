"""Binance Spot order book kept locally from `<symbol>@depth@100ms` diffs: protocol and state only.

The procedure is Binance's own ("How to manage a local order book correctly",
binance-spot-api-docs `web-socket-streams.md`, read at commit a5e0bc3, 2026-07-21):

1. buffer the diff events of the stream;
2. take a REST snapshot `GET /api/v3/depth?symbol=..&limit=..` (`{lastUpdateId, bids, asks}`);
3. drop every buffered event with `u <= lastUpdateId`; the first event left must span
   `lastUpdateId + 1` (`U <= lastUpdateId + 1 <= u`), else the snapshot is older than the buffer
   and a new one is needed;
4. apply the events in order: an event with `u <=` the book's id is stale (ignored), one with
   `U >` the book's id + 1 means events were missed (a gap: resynchronise); normally `U` is the
   previous `u + 1`. Quantities are absolute; a quantity of 0 removes the level (removing a level
   the book does not hold is normal).

The older text of the same page (quoted in many clients) says "the first processed event should
have `U <= lastUpdateId+1 AND u >= lastUpdateId+1`"; the current one says "`lastUpdateId` within
its `[U;u]` range" together with the update rule above. Both are the same condition once stale
events are dropped, and that condition is what `LocalOrderBook` checks.

Nothing here does I/O: the caller feeds events (`on_event`), snapshots (`on_snapshot`) and
disconnections (`on_disconnect`), and acts on the `Resync` values returned (take a new snapshot,
record the resynchronisation). Memory is bounded: the pre-snapshot buffer keeps at most
`max_buffer` events (the oldest go first: a snapshot newer than them does not need them, and an
older one is refused and refetched), and each side keeps at most `max_levels` levels (the ones
farthest from the top are dropped; Binance's REST snapshot itself returns at most 5000 per side, so
levels beyond that are not known anyway, as its documentation notes).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import orjson

from ingestion_pipelines.core.values import non_negative_exact, positive_exact
from ingestion_pipelines.feeds.protocol import ParseError

SOURCE = "binance"
SNAPSHOT_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)  # REST `limit`; weight 5/25/50/250
MAX_SNAPSHOT_LEVELS = 5000
DEFAULT_MAX_BUFFER = 10_000  # 100 ms events: over 16 minutes of diffs while a snapshot is awaited

Level = tuple[Decimal, Decimal]  # (price, quantity)


@dataclass(frozen=True, slots=True)
class DepthEvent:
    """One `depthUpdate` event: update ids `U`..`u` and the levels they set."""

    symbol: str
    first_update_id: int  # U
    final_update_id: int  # u
    event_time_ms: int  # E
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    """A REST `GET /api/v3/depth` answer."""

    symbol: str
    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class Resync:
    """The book was lost and must be rebuilt from a new snapshot: recorded with its reason.

    `from_update_id` is the book's (or refused snapshot's) last update id, `to_update_id` the
    first update id that could not be applied (`None` when unknown, e.g. after a disconnect).
    """

    symbol: str
    at: datetime
    from_update_id: int | None
    to_update_id: int | None
    reason: str  # gap | snapshot_too_old | reconnect

    def as_row(self) -> dict[str, Any]:
        """The resynchronisation as a row (source, symbol, at, from/to update ids, reason)."""
        return {
            "source": SOURCE,
            "symbol": self.symbol,
            "at": self.at,
            "from_update_id": self.from_update_id,
            "to_update_id": self.to_update_id,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """The top `depth` levels of each side at one update id (bids best first, asks best first)."""

    symbol: str
    at: datetime
    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]

    def as_row(self) -> dict[str, Any]:
        """An `order_book_snapshot` row; levels as `[price, quantity]` decimal strings, exact."""
        return {
            "source": SOURCE,
            "symbol": self.symbol,
            "at": self.at,
            "last_update_id": self.last_update_id,
            "bids": [[str(p), str(q)] for p, q in self.bids],
            "asks": [[str(p), str(q)] for p, q in self.asks],
        }


def snapshot_url(rest_base_url: str, symbol: str, limit: int = 1000) -> str:
    """The REST depth snapshot request (`limit` one of `SNAPSHOT_LIMITS`)."""
    if limit not in SNAPSHOT_LIMITS:
        raise ValueError(f"limit must be one of {SNAPSHOT_LIMITS}, got {limit}")
    query = urlencode({"symbol": symbol.upper(), "limit": limit})
    return f"{rest_base_url.rstrip('/')}/api/v3/depth?{query}"


def stream_name(symbol: str) -> str:
    """The diff-depth stream of one symbol, 100 ms updates."""
    return f"{symbol.lower()}@depth@100ms"


def _levels(raw: Any, what: str) -> tuple[Level, ...]:
    if not isinstance(raw, list):
        raise ParseError(f"{what} must be a list of [price, quantity]")
    levels = []
    for entry in raw:
        if not isinstance(entry, list) or len(entry) < 2:
            raise ParseError(f"{what}: a level is not [price, quantity]: {str(entry)[:60]}")
        try:
            levels.append((positive_exact(entry[0]), non_negative_exact(entry[1])))
        except ValueError as exc:
            raise ParseError(f"{what}: {exc}") from None
    return tuple(levels)


def _update_id(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise ParseError(f"{what} must be a non-negative integer, got {str(value)[:40]!r}")
    return value


def parse_depth_event(raw: bytes | str | dict[str, Any]) -> DepthEvent:
    """A `depthUpdate` event (raw or in a combined-stream envelope); `ParseError` if malformed."""
    try:
        message = orjson.loads(raw) if isinstance(raw, bytes | str) else raw
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"not JSON: {exc}") from None
    data = message.get("data", message) if isinstance(message, dict) else None
    if not isinstance(data, dict) or data.get("e") != "depthUpdate":
        raise ParseError("not a depthUpdate event")
    symbol = data.get("s")
    if not isinstance(symbol, str) or not symbol:
        raise ParseError("depthUpdate without a symbol")
    first = _update_id(data.get("U"), "U")
    final = _update_id(data.get("u"), "u")
    if final < first:
        raise ParseError(f"{symbol}: u {final} < U {first}")
    return DepthEvent(
        symbol,
        first,
        final,
        _update_id(data.get("E"), "E"),
        _levels(data.get("b"), f"{symbol} bids"),
        _levels(data.get("a"), f"{symbol} asks"),
    )


def parse_depth_snapshot(symbol: str, payload: bytes | str) -> DepthSnapshot:
    """A REST depth answer; `ParseError` if malformed (an error body included)."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"depth snapshot {symbol}: not JSON: {exc}") from None
    if not isinstance(body, dict) or "lastUpdateId" not in body:
        raise ParseError(f"depth snapshot {symbol}: no lastUpdateId in {str(body)[:80]}")
    return DepthSnapshot(
        symbol.upper(),
        _update_id(body["lastUpdateId"], "lastUpdateId"),
        _levels(body.get("bids"), f"{symbol} snapshot bids"),
        _levels(body.get("asks"), f"{symbol} snapshot asks"),
    )


class _BookSide:
    """One side's levels: quantities by price, and the prices kept sorted (best first on read)."""

    __slots__ = ("_prices", "_quantities", "descending")

    def __init__(self, descending: bool) -> None:
        self.descending = descending  # bids: the best price is the highest
        self._quantities: dict[Decimal, Decimal] = {}
        self._prices: list[Decimal] = []  # ascending

    def __len__(self) -> int:
        return len(self._prices)

    def reset(self, levels: tuple[Level, ...] = ()) -> None:
        """Replace every level (a snapshot; zero quantities are absent levels)."""
        self._quantities = {p: q for p, q in levels if q}
        self._prices = sorted(self._quantities)

    def set(self, price: Decimal, quantity: Decimal) -> None:
        """Set one level's absolute quantity; 0 removes it (absent already is fine)."""
        if quantity:
            if price not in self._quantities:
                insort(self._prices, price)
            self._quantities[price] = quantity
        elif self._quantities.pop(price, None) is not None:
            del self._prices[bisect_left(self._prices, price)]

    def trim(self, keep: int) -> None:
        """Drop the levels farthest from the top beyond `keep`."""
        excess = len(self._prices) - keep
        if excess <= 0:
            return
        if self.descending:
            dropped, self._prices = self._prices[:excess], self._prices[excess:]
        else:
            dropped, self._prices = self._prices[keep:], self._prices[:keep]
        for price in dropped:
            del self._quantities[price]

    def best(self, depth: int) -> tuple[Level, ...]:
        """The `depth` best levels, best first."""
        if self.descending:
            prices = self._prices[max(0, len(self._prices) - depth) :][::-1]
        else:
            prices = self._prices[:depth]
        return tuple((p, self._quantities[p]) for p in prices)


class LocalOrderBook:
    """One symbol's book, kept by Binance's procedure; see the module docstring.

    States: *buffering* (no usable snapshot yet: events are buffered, `needs_snapshot` is true)
    and *synced* (events are applied). Every loss of sync returns a `Resync` and goes back to
    buffering; the event that revealed a gap is kept in the new buffer.
    """

    def __init__(
        self,
        symbol: str,
        *,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        max_levels: int = MAX_SNAPSHOT_LEVELS,
    ) -> None:
        if max_buffer < 1 or max_levels < 1:
            raise ValueError("max_buffer and max_levels must be positive")
        self.symbol = symbol.upper()
        self.max_levels = max_levels
        self._buffer: deque[DepthEvent] = deque(maxlen=max_buffer)
        self._bids = _BookSide(descending=True)
        self._asks = _BookSide(descending=False)
        self._update_id: int | None = None  # None while buffering
        self.stale_events = 0  # dropped as already covered (u <= the book's id)
        self.applied_events = 0

    @property
    def synced(self) -> bool:
        """Whether the book is usable (a snapshot applied and no gap since)."""
        return self._update_id is not None

    @property
    def needs_snapshot(self) -> bool:
        """Whether the caller should fetch a REST snapshot now."""
        return self._update_id is None

    @property
    def last_update_id(self) -> int | None:
        """The update id the book reflects (`None` while buffering)."""
        return self._update_id

    @property
    def buffered(self) -> int:
        """Events waiting for a snapshot."""
        return len(self._buffer)

    def on_event(self, event: DepthEvent, at: datetime) -> Resync | None:
        """Buffer (no snapshot yet) or apply one diff event; a `Resync` when a gap shows."""
        if event.symbol.upper() != self.symbol:
            raise ValueError(f"event for {event.symbol} given to the {self.symbol} book")
        if self._update_id is None:
            self._buffer.append(event)
            return None
        return self._apply_in_sequence(event, at)

    def on_snapshot(self, snapshot: DepthSnapshot, at: datetime) -> Resync | None:
        """Start from a REST snapshot and replay the buffer; a `Resync` if the snapshot is older
        than the first buffered event (fetch another one). A snapshot that arrives while the book
        is synced (a late answer) is ignored: the book is already newer."""
        if self._update_id is not None:
            return None
        last = snapshot.last_update_id
        while self._buffer and self._buffer[0].final_update_id <= last:
            self._buffer.popleft()
            self.stale_events += 1
        if self._buffer and self._buffer[0].first_update_id > last + 1:
            return Resync(
                self.symbol, at, last, self._buffer[0].first_update_id, "snapshot_too_old"
            )
        self._bids.reset(snapshot.bids)
        self._asks.reset(snapshot.asks)
        self._trim()
        self._update_id = last
        while self._buffer:
            resync = self._apply_in_sequence(self._buffer.popleft(), at)
            if resync is not None:
                return resync
        return None

    def on_disconnect(self, at: datetime) -> Resync:
        """The stream was lost (reconnect, server shutdown): the book must be rebuilt."""
        resync = Resync(self.symbol, at, self._update_id, None, "reconnect")
        self._drop_book()
        self._buffer.clear()  # a new connection starts a new buffer
        return resync

    def top(self, depth: int, at: datetime) -> BookSnapshot:
        """The best `depth` levels of each side at the current update id (synced books only)."""
        if self._update_id is None:
            raise RuntimeError(f"{self.symbol}: no book while waiting for a snapshot")
        bids, asks = self._bids.best(depth), self._asks.best(depth)
        return BookSnapshot(self.symbol, at, self._update_id, bids, asks)

    def _apply_in_sequence(self, event: DepthEvent, at: datetime) -> Resync | None:
        assert self._update_id is not None
        if event.final_update_id <= self._update_id:
            self.stale_events += 1
            return None
        if event.first_update_id > self._update_id + 1:
            resync = Resync(self.symbol, at, self._update_id, event.first_update_id, "gap")
            self._drop_book()
            # it (and, while replaying a buffer, the events after it) may be what the next
            # snapshot needs: kept, in order
            self._buffer.appendleft(event)
            return resync
        self._set_levels(self._bids, event.bids)
        self._set_levels(self._asks, event.asks)
        self._trim()
        self._update_id = event.final_update_id
        self.applied_events += 1
        return None

    @staticmethod
    def _set_levels(side: _BookSide, levels: tuple[Level, ...]) -> None:
        for price, quantity in levels:
            side.set(price, quantity)

    def _trim(self) -> None:
        self._bids.trim(self.max_levels)
        self._asks.trim(self.max_levels)

    def _drop_book(self) -> None:
        self._update_id = None
        self._bids.reset()
        self._asks.reset()
