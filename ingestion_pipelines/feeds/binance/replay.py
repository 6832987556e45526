"""A local server that speaks Binance Spot's public market-data protocol, for the demo and tests.

Websocket (like ``wss://stream.binance.com:9443``):

- ``/stream?streams=btcusdt@trade/ethusdt@trade`` — combined streams; every event is wrapped
  as ``{"stream":"btcusdt@trade","data":{...}}``;
- ``/ws/btcusdt@trade`` (more streams may follow, ``/``-separated) and bare ``/ws`` — raw
  streams, events unwrapped;
- live control messages on either path: ``SUBSCRIBE``/``UNSUBSCRIBE`` (answer
  ``{"result":null,"id":<id>}``), ``LIST_SUBSCRIPTIONS``, ``SET_PROPERTY``/``GET_PROPERTY``
  ``combined``, with the documented error replies (``{"code":3,"msg":"Invalid JSON: ..."}``...);
- trade events exactly in the current documented shape (field order kept)::

      {"e":"trade","E":1776148327433,"s":"BTCUSDT","t":1001,"p":"43210.12000000",
       "q":"0.51234000","T":1776148327431,"m":true,"M":true}

  ``E`` (event time) is taken when the frame is written, ``T`` when the trade was generated;
- a ping frame every `ping_interval` seconds (real: 20 s); a connection whose ping stays
  unanswered for `pong_timeout` seconds (real: 60 s) is closed; connections are closed at
  `max_connection_age_s` (real: 24 h);
- ``serverShutdown`` on demand: ``{"e":"serverShutdown","E":<ms>}`` (unwrapped, on every path).

REST on the same port (like ``https://api.binance.com``; ``rest_url`` is ``http://HOST:PORT``):
``GET /api/v3/historicalTrades?symbol=BTCUSDT&fromId=N&limit=M`` (limit default 500, capped at
1000), ``GET /api/v3/trades``, ``/api/v3/ping``, ``/api/v3/time``; rows are
``{"id":..,"price":"..","qty":"..","quoteQty":"..","time":..,"isBuyerMaker":..,"isBestMatch":true}``
with the same values the stream carried; errors are Binance's ``{"code":-1121,"msg":"Invalid
symbol."}`` shapes with HTTP 400.

The market: trades are generated round-robin over `symbols` at `rate` messages/s in total, with
consecutive ids per symbol from `start_trade_id`, deterministic prices/quantities (8-decimal
strings) derived from (seed, symbol, id). Every generated trade is journaled — also while no
client is connected, and when `skip_ids()` holds it back — so ``trades(symbol)`` is the ground
truth and a client that saw a gap can fill it from ``historicalTrades``. ``history_limit`` /
``forget_before()`` make old trades unavailable over REST (history exhausted).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from ingestion_pipelines.replay.ws_server import (
    BackgroundWsServer,
    ClientConn,
    Outgoing,
    _CloseItem,
    _Marker,
    json_response,
    now_ms,
    text_response,
    wait_event,
)

__all__ = ["BenchmarkRun", "BinanceServer", "Trade", "trade_stream"]

DEFAULT_BASE_PRICES: dict[str, str] = {
    "BTCUSDT": "43210.12",
    "ETHUSDT": "2345.67",
    "BNBUSDT": "312.45",
    "SOLUSDT": "98.76",
}
REST_DEFAULT_LIMIT = 500
REST_MAX_LIMIT = 1000
_CENT = Decimal("0.01")
_Q8 = Decimal("0.00000001")


def trade_stream(symbol: str) -> str:
    """The trade stream name of a symbol: ``btcusdt@trade``."""
    return f"{symbol.lower()}@trade"


@dataclass(frozen=True, slots=True)
class Trade:
    """One trade as journaled by the server (the values both the stream and REST carry)."""

    symbol: str
    id: int
    price: str  # "43210.12000000"
    qty: str  # "0.51234000"
    quote_qty: str  # price * qty, 8 decimals
    time: int  # trade time, epoch ms (stream "T", REST "time")
    is_buyer_maker: bool  # stream "m", REST "isBuyerMaker"

    def event(self, event_time_ms: int) -> dict[str, Any]:
        """The trade stream payload (``data`` of a combined-stream message)."""
        return {
            "e": "trade",
            "E": event_time_ms,
            "s": self.symbol,
            "t": self.id,
            "p": self.price,
            "q": self.qty,
            "T": self.time,
            "m": self.is_buyer_maker,
            "M": True,
        }

    def rest(self) -> dict[str, Any]:
        """The ``GET /api/v3/historicalTrades`` row."""
        return {
            "id": self.id,
            "price": self.price,
            "qty": self.qty,
            "quoteQty": self.quote_qty,
            "time": self.time,
            "isBuyerMaker": self.is_buyer_maker,
            "isBestMatch": True,
        }


@dataclass
class BenchmarkRun:
    """A benchmark burst: `count` trades of `symbol` with ids `first_id`..`last_id`.

    Each message's ``E`` is the epoch ms at which it was written to the socket, so a consumer
    measures latency as ``receive_time - E``. `done` is set once every message was written to
    every target connection (or the run failed: see `error`).
    """

    symbol: str
    count: int
    rate: float | None
    first_id: int
    last_id: int
    clients: int = 0
    started_at: float | None = None  # time.time()
    finished_at: float | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    # trade id -> the E it was first sent with (epoch ms): latency measured from outside the client
    sent_ms: dict[int, int] = field(default_factory=dict)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the burst was written (or failed); False on timeout."""
        return self.done.wait(timeout)

    @property
    def duration_s(self) -> float | None:
        """Seconds from the first message to the last, once finished."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


class _Sym:
    """Market state of one symbol (mutated on the loop thread under the server lock)."""

    def __init__(self, symbol: str, first_id: int, base_price: str) -> None:
        self.symbol = symbol
        self.stream = trade_stream(symbol)
        self.first_id = first_id
        self.next_id = first_id
        self.base = Decimal(base_price)
        self.journal: list[Trade] = []
        self.skip = 0
        self.skipped: list[int] = []
        self.sent: set[int] = set()
        self.forgotten_before = first_id


class _BinanceConn(ClientConn):
    def __init__(self, conn_id: int, ws: ServerConnection) -> None:
        super().__init__(conn_id, ws)
        combined, streams = getattr(ws, "binance_route", (True, []))
        self.combined: bool = combined
        self.streams: list[str] = list(dict.fromkeys(streams))

    def details(self) -> dict[str, Any]:
        return {"streams": list(self.streams), "combined": self.combined}


class _TradeOut(Outgoing):
    __slots__ = ("server", "trade", "combined", "stream")

    def __init__(self, server: BinanceServer, trade: Trade, combined: bool, stream: str) -> None:
        self.server = server
        self.trade = trade
        self.combined = combined
        self.stream = stream

    def render(self) -> bytes:
        data = self.trade.event(now_ms())
        return orjson.dumps({"stream": self.stream, "data": data} if self.combined else data)

    def on_sent(self, conn: ClientConn) -> None:
        self.server._mark_sent(self.trade)


class _BenchOut(Outgoing):
    """A pre-built trade message; only the send time is spliced in."""

    __slots__ = ("server", "trade", "prefix", "suffix", "sent_ms")

    def __init__(
        self,
        server: BinanceServer,
        trade: Trade,
        prefix: bytes,
        suffix: bytes,
        sent_ms: dict[int, int],
    ) -> None:
        self.server = server
        self.trade = trade
        self.prefix = prefix
        self.suffix = suffix
        self.sent_ms = sent_ms

    def render(self) -> bytes:
        ms = now_ms()
        self.sent_ms.setdefault(self.trade.id, ms)
        return b"%s%d%s" % (self.prefix, ms, self.suffix)

    def on_sent(self, conn: ClientConn) -> None:
        self.server._mark_sent(self.trade)


class _EventOut(Outgoing):
    """A connection event (``serverShutdown``) whose ``E`` is the send time."""

    __slots__ = ("event",)

    def __init__(self, event: str) -> None:
        self.event = event

    def render(self) -> bytes:
        return orjson.dumps({"e": self.event, "E": now_ms()})


def _bench_parts(trade: Trade, stream: str, combined: bool) -> tuple[bytes, bytes]:
    marker = -7_777_777_777_777  # placeholder for E, split out of the serialized message
    data = trade.event(marker)
    raw = orjson.dumps({"stream": stream, "data": data} if combined else data)
    prefix, suffix = raw.split(str(marker).encode(), 1)
    return prefix, suffix


class BinanceServer(BackgroundWsServer):
    """Binance Spot trade streams + ``historicalTrades`` on one local port (see module doc).

    Args:
        host, port: where to listen (port 0: any free port; kept across `restart()`).
        symbols: the market's symbols (upper case); streams are ``<symbol lower>@trade``.
        start_trade_id: first trade id, one for all symbols or a mapping per symbol.
        rate: trades generated per second over all symbols (0: only `generate()`).
        ping_interval: seconds between server pings (real: 20; None: no pings).
        pong_timeout: close a connection whose ping is unanswered this long (real: 60).
        max_connection_age_s: close connections this old (real: 24 h; None: never).
        history_limit: REST serves only the newest N trades per symbol (None: all).
        base_prices: price level per symbol (decimal strings); others trade around 100.
        seed: changes the deterministic price/quantity sequence.
        paused: start with generation paused.
    """

    thread_name = "binance-replay"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        symbols: Iterable[str] = ("BTCUSDT", "ETHUSDT"),
        start_trade_id: int | Mapping[str, int] = 1,
        rate: float = 10.0,
        ping_interval: float | None = 20.0,
        pong_timeout: float | None = 60.0,
        max_connection_age_s: float | None = 24 * 3600.0,
        history_limit: int | None = None,
        base_prices: Mapping[str, str] | None = None,
        seed: int = 0,
        paused: bool = False,
    ) -> None:
        super().__init__(
            host,
            port,
            ping_interval=ping_interval,
            pong_timeout=pong_timeout,
            max_connection_age_s=max_connection_age_s,
        )
        names = [s.upper() for s in symbols]
        if not names:
            raise ValueError("at least one symbol is needed")
        prices = {**DEFAULT_BASE_PRICES, **{k.upper(): v for k, v in (base_prices or {}).items()}}
        self._syms: dict[str, _Sym] = {}
        for name in names:
            first = (
                start_trade_id
                if isinstance(start_trade_id, int)
                else int(start_trade_id.get(name, 1))
            )
            self._syms[name] = _Sym(name, first, prices.get(name, "100.00"))
        self._seed = seed
        self._rate = float(rate)
        self._paused = paused
        self._history_limit = history_limit
        self._rr = itertools.cycle(names)
        self._bench_active = False
        self._gen_wake: asyncio.Event | None = None
        self._rest_requests: list[str] = []
        self._rest_failures: list[int] = []

    # -- state for tests -------------------------------------------------------------------

    @property
    def rest_url(self) -> str:
        """REST base URL (same port as the websocket): ``http://127.0.0.1:<port>``."""
        return self.http_url

    @property
    def symbols(self) -> list[str]:
        """The symbols the server trades."""
        return list(self._syms)

    def stream_url(self, symbols: Iterable[str] | None = None) -> str:
        """The combined-stream URL for `symbols` (default: all)."""
        names = list(symbols) if symbols is not None else self.symbols
        return f"{self.url}/stream?streams=" + "/".join(trade_stream(s) for s in names)

    def trades(self, symbol: str) -> list[Trade]:
        """Every trade generated for `symbol` so far (sent, skipped or not), in id order."""
        with self._cond:
            return list(self._sym(symbol).journal)

    def last_trade_id(self, symbol: str) -> int | None:
        """The id of the newest trade generated for `symbol` (None before the first)."""
        with self._cond:
            sym = self._sym(symbol)
            return sym.journal[-1].id if sym.journal else None

    def sent_ids(self, symbol: str) -> list[int]:
        """Ids of `symbol`'s trades written to at least one connection, ascending."""
        with self._cond:
            return sorted(self._sym(symbol).sent)

    def skipped_ids(self, symbol: str) -> list[int]:
        """Ids journaled but held back from the stream by `skip_ids()`."""
        with self._cond:
            return list(self._sym(symbol).skipped)

    def rest_available_from(self, symbol: str) -> int:
        """The oldest trade id REST still serves for `symbol`."""
        with self._cond:
            return self._available_from(self._sym(symbol))

    @property
    def rest_requests(self) -> list[str]:
        """Paths (with query) of the REST requests received, in order."""
        with self._cond:
            return list(self._rest_requests)

    @property
    def rate(self) -> float:
        """Trades generated per second and symbol."""
        return self._rate

    @property
    def paused(self) -> bool:
        """True while trade generation is paused."""
        return self._paused

    def wait_trades(self, symbol: str, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least `count` trades of `symbol` were generated."""
        return self.wait_for(lambda: len(self._sym(symbol).journal) >= count, timeout)

    def wait_sent(self, symbol: str, trade_id: int, timeout: float = 10.0) -> bool:
        """Wait until trade `trade_id` of `symbol` was written to some connection."""
        return self.wait_for(lambda: trade_id in self._sym(symbol).sent, timeout)

    def wait_subscribed(self, symbol: str, n: int = 1, timeout: float = 10.0) -> bool:
        """Wait until `n` open connections carry `symbol`'s trade stream."""
        stream = trade_stream(symbol)
        return self.wait_for(
            lambda: sum(1 for c in self._bconns() if stream in c.streams) >= n, timeout
        )

    # -- controls (thread-safe) ------------------------------------------------------------

    def pause(self) -> None:
        """Stop generating trades (the market is closed) until `resume()`."""
        self._paused = True
        self._wake_generator()

    def resume(self) -> None:
        """Generate trades again after `pause()`."""
        self._paused = False
        self._wake_generator()

    def set_rate(self, msgs_per_s: float) -> None:
        """Trades per second over all symbols (0: none until `generate()` or a new rate)."""
        if msgs_per_s < 0:
            raise ValueError("rate must be >= 0")
        self._rate = float(msgs_per_s)
        self._wake_generator()

    def skip_ids(self, symbol: str, n: int) -> None:
        """Journal but do not send the next `n` trades of `symbol` (a gap to fill from REST)."""
        with self._cond:
            self._sym(symbol).skip += n

    def generate(self, n: int = 1, symbol: str | None = None) -> list[Trade]:
        """Generate `n` trades now (round-robin, or all for `symbol`) and broadcast them."""
        if symbol is not None:
            self._sym(symbol)

        def gen() -> list[Trade]:
            if self._bench_active:
                raise RuntimeError("a benchmark is running")
            out = [self._emit(self._syms[symbol.upper()] if symbol else None) for _ in range(n)]
            self._notify()
            return out

        if not self.running:
            raise RuntimeError("BinanceServer is not running")
        return self._call(gen)

    def set_history_limit(self, n: int | None) -> None:
        """REST serves only the newest `n` trades per symbol from now on (None: all)."""
        with self._cond:
            self._history_limit = n

    def forget_before(self, symbol: str, trade_id: int) -> None:
        """REST no longer serves `symbol`'s trades with an id below `trade_id`."""
        with self._cond:
            sym = self._sym(symbol)
            sym.forgotten_before = max(sym.forgotten_before, trade_id)

    def fail_rest(self, times: int = 1, status: int = 429) -> None:
        """Answer the next `times` REST requests with `status` (429, 418, 5xx) instead."""
        with self._cond:
            self._rest_failures.extend([status] * times)

    def send_server_shutdown(
        self, close_after_s: float | None = None, *, code: int = 1001, reason: str = ""
    ) -> int:
        """Send ``{"e":"serverShutdown","E":<ms>}`` to every client; returns how many.

        With `close_after_s`, those connections are closed (`code`) that many seconds later,
        like the real server going down after its notice.
        """

        def send() -> int:
            conns = self._open_conns()
            for conn in conns:
                conn.enqueue(_EventOut("serverShutdown"))
            if close_after_s is not None:
                loop = asyncio.get_running_loop()

                def close_them() -> None:
                    for conn in conns:
                        conn.enqueue(_CloseItem(code, reason))
                        conn.closing = True

                loop.call_later(close_after_s, close_them)
            return len(conns)

        return self._call(send)

    def benchmark(
        self,
        n: int,
        *,
        rate: float | None = None,
        symbol: str | None = None,
        min_clients: int = 1,
        timeout: float = 10.0,
    ) -> BenchmarkRun:
        """Send `n` pre-built trades of `symbol` as fast as possible (or at `rate` per second).

        Waits up to `timeout` for `min_clients` connections subscribed to the symbol; regular
        generation is suspended during the run and resumes after it. Returns at once: wait on
        `run.done` / `run.wait()`. Each message's ``E`` is its send time (epoch ms).
        """
        name = (symbol or self.symbols[0]).upper()
        sym = self._sym(name)
        if not self.wait_subscribed(name, min_clients, timeout):
            raise TimeoutError(f"fewer than {min_clients} clients subscribed to {sym.stream}")

        def reserve() -> int:
            if self._bench_active:
                raise RuntimeError("a benchmark is already running")
            self._bench_active = True
            with self._cond:
                first = sym.next_id
                sym.next_id += n
            return first

        first_id = self._call(reserve)
        run = BenchmarkRun(name, n, rate, first_id, first_id + n - 1)
        try:
            t_ms = now_ms()
            trades = [self._make_trade(sym, first_id + i, t_ms) for i in range(n)]
            combined = [_bench_parts(t, sym.stream, True) for t in trades]
            raw = [_bench_parts(t, sym.stream, False) for t in trades]
        except BaseException:
            self._call(self._end_benchmark)
            raise
        self._call(lambda: self._spawn(self._run_benchmark(run, sym, trades, combined, raw)))
        return run

    # -- internals -------------------------------------------------------------------------

    def _sym(self, symbol: str) -> _Sym:
        try:
            return self._syms[symbol.upper()]
        except KeyError:
            raise KeyError(f"unknown symbol {symbol!r}; the server has {self.symbols}") from None

    def _bconns(self) -> list[_BinanceConn]:
        return [c for c in self._conns.values() if not c.closing]  # type: ignore[misc]

    def _available_from(self, sym: _Sym) -> int:
        low = max(sym.first_id, sym.forgotten_before)
        if self._history_limit is not None:
            low = max(low, sym.next_id - self._history_limit)
        return low

    def _make_conn(self, conn_id: int, ws: ServerConnection) -> ClientConn:
        return _BinanceConn(conn_id, ws)

    def _make_trade(self, sym: _Sym, trade_id: int, t_ms: int) -> Trade:
        digest = hashlib.blake2b(
            f"{self._seed}:{sym.symbol}:{trade_id}".encode(), digest_size=8
        ).digest()
        h = int.from_bytes(digest, "big")
        # price within +-1% of the base, in cents; quantity 0.00001 .. 2.00000
        price = (sym.base * (1 + Decimal((h % 20001) - 10000) / 1_000_000)).quantize(_CENT)
        qty = Decimal((h >> 16) % 200000 + 1) / 100000
        return Trade(
            symbol=sym.symbol,
            id=trade_id,
            price=f"{price:.8f}",
            qty=f"{qty:.8f}",
            quote_qty=f"{(price * qty).quantize(_Q8):.8f}",
            time=t_ms,
            is_buyer_maker=bool((h >> 40) & 1),
        )

    def _emit(self, sym: _Sym | None = None) -> Trade:
        """Generate, journal and (unless skipped) broadcast one trade. Loop thread only."""
        if sym is None:
            sym = self._syms[next(self._rr)]
        with self._cond:
            trade = self._make_trade(sym, sym.next_id, now_ms())
            sym.next_id += 1
            sym.journal.append(trade)
            if sym.skip > 0:
                sym.skip -= 1
                sym.skipped.append(trade.id)
                return trade
        for conn in self._bconns():
            if sym.stream in conn.streams:
                conn.enqueue(_TradeOut(self, trade, conn.combined, sym.stream))
        return trade

    def _mark_sent(self, trade: Trade) -> None:
        with self._cond:
            self._syms[trade.symbol].sent.add(trade.id)
            self._cond.notify_all()

    def _wake_generator(self) -> None:
        loop, wake = self._loop, self._gen_wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    async def _on_started(self) -> None:
        self._gen_wake = asyncio.Event()
        self._bench_active = False
        self._spawn(self._generator())

    async def _generator(self) -> None:
        loop = asyncio.get_running_loop()
        wake = self._gen_wake
        assert wake is not None
        max_burst = 10_000
        while True:
            if self._paused or self._bench_active or self._rate <= 0:
                wake.clear()
                await wake.wait()
                continue
            rate = self._rate
            start, count = loop.time(), 0
            while not (self._paused or self._bench_active) and self._rate == rate:
                due = int((loop.time() - start) * rate) - count
                if due > max_burst:  # fell far behind (suspended loop): drop the backlog
                    start, count, due = loop.time(), 0, 1
                if due > 0:
                    for _ in range(due):
                        self._emit()
                    count += due
                    self._notify()
                next_at = start + (count + 1) / rate
                wake.clear()
                await wait_event(wake, max(0.0, next_at - loop.time()))

    def _end_benchmark(self) -> None:
        self._bench_active = False
        if self._gen_wake is not None:
            self._gen_wake.set()

    async def _run_benchmark(
        self,
        run: BenchmarkRun,
        sym: _Sym,
        trades: list[Trade],
        combined: list[tuple[bytes, bytes]],
        raw: list[tuple[bytes, bytes]],
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            targets = [c for c in self._bconns() if sym.stream in c.streams]
            run.clients = len(targets)
            run.started_at = time.time()
            start = loop.time()
            i = 0
            while i < len(trades):
                if run.rate:
                    due = min(len(trades), int((loop.time() - start) * run.rate) + 1)
                    if due <= i:
                        await asyncio.sleep(max(0.0, start + i / run.rate - loop.time()))
                        continue
                else:
                    due = min(len(trades), i + 256)
                with self._cond:
                    sym.journal.extend(trades[i:due])
                for j in range(i, due):
                    for conn in targets:
                        prefix, suffix = combined[j] if conn.combined else raw[j]
                        conn.enqueue(_BenchOut(self, trades[j], prefix, suffix, run.sent_ms))
                i = due
                self._notify()
                await asyncio.sleep(0)
            futures = []
            for conn in targets:
                fut: asyncio.Future[None] = loop.create_future()
                conn.enqueue(_Marker(fut))
                futures.append(fut)
            if futures:
                await asyncio.gather(*futures)
            run.finished_at = time.time()
        except BaseException as exc:
            run.error = exc
            raise
        finally:
            self._end_benchmark()
            run.done.set()
            self._notify()

    # -- websocket control messages ----------------------------------------------------------

    async def _on_message(self, conn: ClientConn, message: str | bytes) -> None:
        assert isinstance(conn, _BinanceConn)
        reply = self._control_reply(conn, message)
        if reply is not None:
            conn.enqueue(orjson.dumps(reply).decode())

    def _control_reply(self, conn: _BinanceConn, message: str | bytes) -> dict[str, Any] | None:
        try:
            request = orjson.loads(message)
        except orjson.JSONDecodeError as exc:
            return {"code": 3, "msg": f"Invalid JSON: {_json_error(exc)}"}
        if not isinstance(request, dict) or "method" not in request:
            return {"code": 2, "msg": "Invalid request: missing field `method` at line 1 column 1"}
        req_id = request.get("id")
        if "id" not in request or not _valid_id(req_id):
            return {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}
        method = request["method"]
        params = request.get("params")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return {
                    "code": 2,
                    "msg": "Invalid request: invalid type for `params`",
                    "id": req_id,
                }
            if method == "SUBSCRIBE":
                for stream in params:
                    if stream not in conn.streams:
                        conn.streams.append(stream)
            else:
                conn.streams = [s for s in conn.streams if s not in params]
            self._notify()
            return {"result": None, "id": req_id}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": list(conn.streams), "id": req_id}
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            if not isinstance(params, list) or not params or not isinstance(params[0], str):
                return {"code": 2, "msg": "Invalid request: property name must be a string"}
            if params[0] != "combined":
                return {"code": 0, "msg": "Unknown property", "id": req_id}
            if method == "GET_PROPERTY":
                return {"result": conn.combined, "id": req_id}
            if len(params) != 2 or not isinstance(params[1], bool):
                return {"code": 1, "msg": "Invalid value type: expected Boolean"}
            conn.combined = params[1]
            return {"result": None, "id": req_id}
        return {
            "code": 2,
            "msg": (
                f"Invalid request: unknown variant {method}, expected one of `SUBSCRIBE`, "
                "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` at line 1 "
                "column 28"
            ),
        }

    # -- routing and REST --------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        path = parts.path
        if path.startswith("/api/"):
            return self._rest(path, parts.query, request.path)
        if path in ("/stream", "/stream/"):
            query = parse_qs(parts.query).get("streams", [""])[-1]
            connection.binance_route = (True, [s for s in query.split("/") if s])  # type: ignore[attr-defined]
            return None
        if path == "/ws" or path.startswith("/ws/"):
            rest = path[3:].strip("/")
            connection.binance_route = (False, [s for s in rest.split("/") if s])  # type: ignore[attr-defined]
            return None
        return text_response(404, "Not Found\n")

    def _rest(self, path: str, query: str, full_path: str) -> Response:
        with self._cond:
            self._rest_requests.append(full_path)
            failure = self._rest_failures.pop(0) if self._rest_failures else None
            self._cond.notify_all()
        if failure is not None:
            return _rest_failure(failure)
        path = path.rstrip("/")
        if path == "/api/v3/ping":
            return json_response(200, {})
        if path == "/api/v3/time":
            return json_response(200, {"serverTime": now_ms()})
        if path not in ("/api/v3/historicalTrades", "/api/v3/trades"):
            return text_response(404, "Not Found\n")
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        symbol = params.get("symbol", "")
        if not symbol:
            return _rest_error(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        sym = self._syms.get(symbol)
        if sym is None:
            return _rest_error(-1121, "Invalid symbol.")
        limit = REST_DEFAULT_LIMIT
        if "limit" in params:
            if not params["limit"].isdigit():
                return _illegal_chars("limit")
            limit = int(params["limit"])
            if limit < 1:
                return _rest_error(-1130, "Data sent for parameter 'limit' is not valid.")
            limit = min(limit, REST_MAX_LIMIT)
        from_id: int | None = None
        if "fromId" in params and path.endswith("historicalTrades"):
            if not params["fromId"].isdigit():
                return _illegal_chars("fromId")
            from_id = int(params["fromId"])
        with self._cond:
            low = self._available_from(sym)
            high = sym.first_id + len(sym.journal)  # one past the newest journaled id
            start = max(low, high - limit if from_id is None else from_id)
            stop = min(high, start + limit)
            rows = [t.rest() for t in sym.journal[start - sym.first_id : stop - sym.first_id]]
        return json_response(200, rows)


def _valid_id(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, str) and len(value) <= 36 and value.isalnum()


def _json_error(exc: orjson.JSONDecodeError) -> str:
    return f"expected value at line {exc.lineno} column {exc.colno}"


def _rest_error(code: int, msg: str, status: int = 400) -> Response:
    return json_response(status, {"code": code, "msg": msg})


def _illegal_chars(param: str) -> Response:
    return _rest_error(
        -1100, f"Illegal characters found in parameter '{param}'; legal range is '^[0-9]{{1,20}}$'."
    )


def _rest_failure(status: int) -> Response:
    if status in (418, 429):
        response = _rest_error(
            -1003,
            "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
            "Please use WebSocket Streams for live updates to avoid polling the API.",
            status,
        )
        response.headers["Retry-After"] = "1"
        return response
    return _rest_error(
        -1001, "Internal error; unable to process your request. Please try again.", status
    )
