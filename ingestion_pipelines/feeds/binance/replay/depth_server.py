"""A local Binance Spot depth exchange: diff-depth streams and REST depth snapshots of one true
book per symbol, for `binance_depth`'s tests and benchmark.

- websocket ``/stream?streams=<sym>@depth@100ms/...``: every `interval_s` each subscribed symbol's
  book changes and a ``depthUpdate`` event (``{"stream":..,"data":{"e":"depthUpdate","E","s",
  "U","u","b","a"}}``, the documented shape) carries the change, update ids consecutive;
- REST ``GET /api/v3/depth?symbol=&limit=`` (same port): ``{"lastUpdateId","bids","asks"}`` of the
  true book at that moment, best first, at most `limit` levels a side.

The books start from the recorded REST snapshots (`data/binance-depth-snapshots-2021-10-12.jsonl`)
and go on with the recorded diff events that follow each snapshot, verbatim
(`data/binance-depth-session-2021-10-12.jsonl`); after them, changes are generated (seeded, near
the top of the book, 8-decimal strings, a zero quantity removes a level). Symbols that were not
recorded start from a generated book.

Test controls (any thread): `inject_gap(symbol, n)` applies the next `n` events to the true book
but never sends them (the client sees ids jump); `inject_stale(symbol)` sends an event that was
already sent again; `drop_all()` (the base's) cuts every connection. `history(symbol)` is the
initial book and every event applied (with `keep_history`; else the last few), so a test can
rebuild the reference book at any update id.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from ingestion_pipelines.replay.ws_connection import RawItem
from ingestion_pipelines.replay.ws_server import (
    BackgroundWsServer,
    ClientConn,
    json_response,
    now_ms,
    text_response,
)

DATA = Path(__file__).parent.parent / "data"
SNAPSHOTS = DATA / "binance-depth-snapshots-2021-10-12.jsonl"
SESSION = DATA / "binance-depth-session-2021-10-12.jsonl"
_RECENT = 64  # events kept without `keep_history` (enough to resend stale ones)


@dataclass
class DepthEventRecord:
    """One event applied to a true book (sent or held back)."""

    first: int  # U
    final: int  # u
    bids: list[list[str]]
    asks: list[list[str]]
    sent: bool = True


@dataclass
class TrueBook:
    """One symbol's book as the exchange knows it, and its history."""

    symbol: str
    update_id: int
    bids: dict[Decimal, str]  # price -> quantity text
    asks: dict[Decimal, str]
    initial: tuple[int, list[list[str]], list[list[str]]] = (0, [], [])
    events: list[DepthEventRecord] = field(default_factory=list)
    recorded: list[dict[str, Any]] = field(default_factory=list)  # verbatim events still to send
    hold: int = 0  # events to apply without sending
    stale: int = 0  # already-sent events to send again
    rng: random.Random = field(default_factory=random.Random)
    tick: Decimal = Decimal("0.00000001")

    def apply(self, bids: list[list[str]], asks: list[list[str]]) -> None:
        """Set levels (absolute quantities; zero removes)."""
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, quantity in levels:
                if Decimal(quantity):
                    side[Decimal(price)] = quantity
                else:
                    side.pop(Decimal(price), None)

    def top(self, limit: int) -> tuple[list[list[str]], list[list[str]]]:
        """The best `limit` levels of each side as text pairs."""
        bids = sorted(self.bids, reverse=True)[:limit]
        asks = sorted(self.asks)[:limit]
        return [[str(p), self.bids[p]] for p in bids], [[str(p), self.asks[p]] for p in asks]


def _recorded() -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    snapshots = {}
    for line in SNAPSHOTS.read_text().splitlines():
        record = orjson.loads(line)
        symbol = parse_qs(urlsplit(record["url"]).query)["symbol"][0]
        snapshots[symbol] = orjson.loads(record["raw"])
    events: dict[str, list[dict[str, Any]]] = {}
    for line in SESSION.read_text().splitlines():
        record = orjson.loads(line)
        if record.get("dir") == "in":
            data = orjson.loads(record["raw"])["data"]
            events.setdefault(data["s"], []).append(data)
    return snapshots, events


def _chained(last: int, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The recorded events that follow a snapshot at `last` without a hole."""
    out = []
    for event in events:
        if event["u"] <= last:
            continue
        if event["U"] != last + 1:
            break
        out.append(event)
        last = event["u"]
    return out


def _new_book(symbol: str, seed: int, recorded: tuple[dict, dict]) -> TrueBook:
    snapshots, events = recorded
    rng = random.Random(f"{seed}:{symbol}")
    snapshot = snapshots.get(symbol)
    if snapshot is None:
        mid = Decimal(rng.randint(100, 100_000)) / 100
        bids = [
            [f"{mid - Decimal(i) / 100:.8f}", f"{rng.randint(1, 10**6) / 1000:.8f}"]
            for i in range(1, 200)
        ]
        asks = [
            [f"{mid + Decimal(i) / 100:.8f}", f"{rng.randint(1, 10**6) / 1000:.8f}"]
            for i in range(1, 200)
        ]
        snapshot = {"lastUpdateId": rng.randint(10**6, 10**9), "bids": bids, "asks": asks}
    book = TrueBook(symbol, snapshot["lastUpdateId"], {}, {}, rng=rng)
    book.apply(snapshot["bids"], snapshot["asks"])
    book.initial = (snapshot["lastUpdateId"], snapshot["bids"], snapshot["asks"])
    book.recorded = _chained(book.update_id, events.get(symbol, []))
    prices = sorted(book.bids, reverse=True)[:10]
    steps = [a - b for a, b in zip(prices, prices[1:], strict=False) if a > b]
    book.tick = min(steps, default=Decimal("0.01"))  # the finest step seen near the top
    return book


def _generated(book: TrueBook) -> tuple[list[list[str]], list[list[str]]]:
    rng = book.rng
    sides: tuple[list[list[str]], list[list[str]]] = ([], [])
    best_bid = max(book.bids, default=Decimal(1))
    best_ask = min(book.asks, default=best_bid + book.tick)
    for _ in range(rng.randint(1, 4)):
        is_bid = rng.random() < 0.5
        anchor = best_bid if is_bid else best_ask
        offset = book.tick * rng.randint(0, 15)
        price = anchor - offset if is_bid else anchor + offset
        if price <= 0:
            continue
        quantity = "0.00000000" if rng.random() < 0.3 else f"{rng.randint(1, 10**9) / 10**4:.8f}"
        sides[0 if is_bid else 1].append([f"{price:.8f}", quantity])
    return sides


class BinanceDepthServer(BackgroundWsServer):
    """Diff-depth streams and REST snapshots of seeded true books (see module doc)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        symbols: list[str] | None = None,
        interval_s: float = 0.1,
        seed: int = 21,
        keep_history: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(host, port, **kwargs)
        recorded = _recorded()
        self.symbols = [s.upper() for s in (symbols or list(recorded[0]))]
        self.books = {s: _new_book(s, seed, recorded) for s in self.symbols}
        self.interval_s = interval_s
        self.keep_history = keep_history  # every event (tests); else the last few (stale ones)
        self.snapshot_requests = 0
        self.sent_at: dict[tuple[str, int], float] = {}  # (symbol, u) -> when it was sent
        self.track_sent = False

    @property
    def rest_url(self) -> str:
        """Where the REST snapshots are served (`rest_base_url`)."""
        return self.http_url

    # ---- test controls ---------------------------------------------------------------------
    def inject_gap(self, symbol: str, events: int = 1) -> None:
        """The next `events` events of `symbol` are applied but never sent."""
        with self._cond:
            self.books[symbol.upper()].hold += events

    def inject_stale(self, symbol: str, events: int = 1) -> None:
        """Send `events` already-sent events of `symbol` again (each after a new one)."""
        with self._cond:
            self.books[symbol.upper()].stale += events

    def history(self, symbol: str) -> tuple[tuple[int, list, list], list[DepthEventRecord]]:
        """(initial snapshot, every event applied) of `symbol`."""
        with self._cond:
            book = self.books[symbol.upper()]
            return book.initial, list(book.events)

    def update_id(self, symbol: str) -> int:
        """The true book's current update id."""
        with self._cond:
            return self.books[symbol.upper()].update_id

    # ---- server ----------------------------------------------------------------------------
    async def _on_started(self) -> None:
        self._spawn(self._produce())

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path.rstrip("/") == "/api/v3/depth":
            return self._snapshot(parse_qs(parts.query))
        if parts.path != "/stream":
            return text_response(404, "Not Found\n")
        streams = parse_qs(parts.query).get("streams", [""])[0].split("/")
        connection.depth_symbols = {  # type: ignore[attr-defined]
            s.split("@", 1)[0].upper() for s in streams if s.endswith("@depth@100ms")
        }
        return None

    def _snapshot(self, query: dict[str, list[str]]) -> Response:
        symbol = query.get("symbol", [""])[0].upper()
        limit = int(query.get("limit", ["100"])[0])
        with self._cond:
            book = self.books.get(symbol)
            if book is None:
                return json_response(400, {"code": -1121, "msg": "Invalid symbol."})
            self.snapshot_requests += 1
            bids, asks = book.top(limit)
            return json_response(200, {"lastUpdateId": book.update_id, "bids": bids, "asks": asks})

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.interval_s
            frames = self._step_all()
            conns = self._open_conns()
            for conn in conns:
                wanted = getattr(conn.ws, "depth_symbols", set())
                for symbol, raw in frames:
                    if symbol in wanted:
                        conn.enqueue(RawItem(raw, True))
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    def _step_all(self) -> list[tuple[str, str]]:
        frames = []
        with self._cond:
            for symbol, book in self.books.items():
                frames.extend((symbol, raw) for raw in self._step(book))
            self._cond.notify_all()
        return frames

    def _step(self, book: TrueBook) -> list[str]:
        if book.recorded:
            data = book.recorded.pop(0)
            bids, asks, first, final = data["b"], data["a"], data["U"], data["u"]
        else:
            bids, asks = _generated(book)
            first = book.update_id + 1
            final = first + book.rng.randint(0, 2)
        book.apply(bids, asks)
        book.update_id = final
        sent = book.hold == 0
        book.hold = max(0, book.hold - 1)
        book.events.append(DepthEventRecord(first, final, bids, asks, sent))
        if not self.keep_history and len(book.events) > 2 * _RECENT:
            del book.events[:-_RECENT]
        out = []
        if sent:
            out.append(self._frame(book.symbol, first, final, bids, asks))
            if self.track_sent:
                self.sent_at[(book.symbol, final)] = asyncio.get_running_loop().time()
        if book.stale and len(book.events) > 3:
            book.stale -= 1
            old = next(e for e in reversed(book.events[:-2]) if e.sent)
            out.append(self._frame(book.symbol, old.first, old.final, old.bids, old.asks))
        return out

    @staticmethod
    def _frame(symbol: str, first: int, final: int, bids: list, asks: list) -> str:
        data = {"e": "depthUpdate", "E": now_ms(), "s": symbol, "U": first, "u": final}
        data["b"], data["a"] = bids, asks
        return orjson.dumps({"stream": f"{symbol.lower()}@depth@100ms", "data": data}).decode()

    async def _on_message(self, conn: ClientConn, message: str | bytes) -> None:
        return None
