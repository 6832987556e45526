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
import itertools
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from ingestion_pipelines.feeds.binance.replay.market import (
    DEFAULT_BASE_PRICES,
    BenchmarkRun,
    SymbolState,
    Trade,
    available_from,
    make_trade,
    trade_stream,
)
from ingestion_pipelines.feeds.binance.replay.rest import (
    TRADE_PATHS,
    journal_page,
    rest_failure,
    trades_query,
)
from ingestion_pipelines.feeds.binance.replay.stream import (
    BinanceConn,
    EventOut,
    TradeOut,
    bench_parts,
    control_reply,
    send_burst,
    stream_route,
)
from ingestion_pipelines.replay.ws_connection import (
    ClientConn,
    CloseItem,
    json_response,
    now_ms,
    text_response,
    wait_event,
)
from ingestion_pipelines.replay.ws_server import BackgroundWsServer


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
        self._syms: dict[str, SymbolState] = {}
        for name in names:
            first = (
                start_trade_id
                if isinstance(start_trade_id, int)
                else int(start_trade_id.get(name, 1))
            )
            self._syms[name] = SymbolState(name, first, prices.get(name, "100.00"))
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
            return available_from(self._sym(symbol), self._history_limit)

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
                conn.enqueue(EventOut("serverShutdown"))
            if close_after_s is not None:
                loop = asyncio.get_running_loop()

                def close_them() -> None:
                    for conn in conns:
                        conn.enqueue(CloseItem(code, reason))
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
            trades = [make_trade(self._seed, sym, first_id + i, t_ms) for i in range(n)]
            combined = [bench_parts(t, sym.stream, True) for t in trades]
            raw = [bench_parts(t, sym.stream, False) for t in trades]
        except BaseException:
            self._call(self._end_benchmark)
            raise
        self._call(lambda: self._spawn(self._run_benchmark(run, sym, trades, combined, raw)))
        return run

    # -- internals -------------------------------------------------------------------------

    def _sym(self, symbol: str) -> SymbolState:
        try:
            return self._syms[symbol.upper()]
        except KeyError:
            raise KeyError(f"unknown symbol {symbol!r}; the server has {self.symbols}") from None

    def _bconns(self) -> list[BinanceConn]:
        return [c for c in self._conns.values() if not c.closing]  # type: ignore[misc]

    def _make_conn(self, conn_id: int, ws: ServerConnection) -> ClientConn:
        return BinanceConn(conn_id, ws)

    def _emit(self, sym: SymbolState | None = None) -> Trade:
        """Generate, journal and (unless skipped) broadcast one trade. Loop thread only."""
        if sym is None:
            sym = self._syms[next(self._rr)]
        with self._cond:
            trade = make_trade(self._seed, sym, sym.next_id, now_ms())
            sym.next_id += 1
            sym.journal.append(trade)
            if sym.skip > 0:
                sym.skip -= 1
                sym.skipped.append(trade.id)
                return trade
        for conn in self._bconns():
            if sym.stream in conn.streams:
                conn.enqueue(TradeOut(self._mark_sent, trade, conn.combined, sym.stream))
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
        sym: SymbolState,
        trades: list[Trade],
        combined: list[tuple[bytes, bytes]],
        raw: list[tuple[bytes, bytes]],
    ) -> None:
        try:
            targets = [c for c in self._bconns() if sym.stream in c.streams]
            parts = (combined, raw)
            await send_burst(run, sym, targets, trades, parts, self._cond, self._mark_sent)
        except BaseException as exc:
            run.error = exc
            raise
        finally:
            self._end_benchmark()
            run.done.set()
            self._notify()

    # -- websocket control messages, routing and REST ----------------------------------------

    async def _on_message(self, conn: ClientConn, message: str | bytes) -> None:
        assert isinstance(conn, BinanceConn)
        reply = control_reply(conn, message, self._notify)
        if reply is not None:
            conn.enqueue(orjson.dumps(reply).decode())

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path.startswith("/api/"):
            return self._rest(parts.path, parts.query, request.path)
        route = stream_route(parts.path, parts.query)
        if route is None:
            return text_response(404, "Not Found\n")
        connection.binance_route = route  # type: ignore[attr-defined]
        return None

    def _rest(self, path: str, query: str, full_path: str) -> Response:
        with self._cond:
            self._rest_requests.append(full_path)
            failure = self._rest_failures.pop(0) if self._rest_failures else None
            self._cond.notify_all()
        if failure is not None:
            return rest_failure(failure)
        path = path.rstrip("/")
        if path == "/api/v3/ping":
            return json_response(200, {})
        if path == "/api/v3/time":
            return json_response(200, {"serverTime": now_ms()})
        if path not in TRADE_PATHS:
            return text_response(404, "Not Found\n")
        request = trades_query(path, query, self._syms)
        if isinstance(request, Response):
            return request
        with self._cond:
            rows = journal_page(self._syms[request.symbol], request, self._history_limit)
        return json_response(200, rows)
