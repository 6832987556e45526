"""The generic websocket replay server the feed folders build on (`feeds/binance/replay.py`,
`feeds/ssi/replay.py`).

`BackgroundWsServer` runs one `websockets` (asyncio) server in its own event loop on a daemon
thread, so tests and the CLI can use it from ordinary synchronous code:

    with BinanceServer(rate=50) as server:          # start() on enter, stop() on exit
        server.url                                   # "ws://127.0.0.1:<port>"
        server.wait_for(lambda: server.connections == 1, timeout=5)

What every server built on it gets:

- each accepted connection has an outbound queue drained by one writer task, so a slow client
  never stalls the producer and every message a connection gets is sent in order;
- server pings every `ping_interval` seconds (unique payloads) and closes a connection whose
  oldest unanswered ping is older than `pong_timeout` (code 1008 "pong timeout");
- connections older than `max_connection_age_s` are closed (code 1001), like Binance's 24-hour cut;
- `received`: every text/binary message and every pong a client sent (`Received` records);
- test controls callable from any thread: `drop_all()` (abort the TCP connection, no close
  frame), `close_all(code)` (after the already queued messages), `inject_malformed(raw)`;
- `wait_for(predicate, timeout)`: a condition wait (no sleeping), woken on every state change;
- `stop()` then `start()` again rebinds the same port, so clients can reconnect to the same URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

__all__ = [
    "BackgroundWsServer",
    "ClientConn",
    "ClientInfo",
    "Outgoing",
    "Received",
    "json_response",
    "text_response",
]

T = TypeVar("T")

_INF = float("inf")


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait for `event` at most `timeout` seconds; True if it is set.

    Uses `asyncio.timeout`, not `asyncio.wait_for`, which on Python 3.11 can swallow a
    cancellation that races with the event being set (the task would then never stop).
    """
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


@dataclass(frozen=True)
class Received:
    """One thing a client sent: a data message or a pong."""

    conn_id: int
    kind: str  # "text" | "binary" | "pong"
    data: str | bytes
    at: float  # time.time()


@dataclass(frozen=True)
class ClientInfo:
    """A snapshot of one open connection."""

    conn_id: int
    path: str  # request path with query string
    headers: dict[str, str]  # request headers, names lower-cased
    connected_at: float  # time.time()
    details: dict[str, Any] = field(default_factory=dict)  # server-specific (streams, symbols)


class Outgoing:
    """A queued message rendered when the writer sends it (so it can carry the send time)."""

    __slots__ = ()

    def render(self) -> str | bytes | None:  # None: nothing to send
        """The message to send now (None: nothing to send)."""
        raise NotImplementedError

    def on_sent(self, conn: ClientConn) -> None:  # called after the frame was written
        """Called once the message was written to `conn`."""
        return None


class _Marker:
    """Queue item resolved when the writer reaches it (everything before it was sent)."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future


class _CloseItem:
    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class _RawItem:
    """A frame sent as given; `text` forces the opcode (bytes as a text frame = invalid UTF-8)."""

    __slots__ = ("data", "text")

    def __init__(self, data: str | bytes, text: bool | None) -> None:
        self.data = data
        self.text = text


class ClientConn:
    """Server-side state of one accepted websocket connection (lives on the server's loop)."""

    def __init__(self, conn_id: int, ws: ServerConnection) -> None:
        self.id = conn_id
        self.ws = ws
        self.opened = asyncio.get_running_loop().time()
        self.connected_at = time.time()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.wake = asyncio.Event()  # wakes the housekeeping task (settings changed)
        self.closing = False
        self.tasks: list[asyncio.Task[Any]] = []
        request = ws.request
        self.path = request.path if request is not None else ""
        self.headers = (
            {k.lower(): v for k, v in request.headers.raw_items()} if request is not None else {}
        )

    def enqueue(self, item: Any) -> None:
        """Queue `item` for the connection's writer, unless it is closing."""
        if not self.closing:
            self.queue.put_nowait(item)

    def details(self) -> dict[str, Any]:  # overridden by servers
        """What the server reports about this connection (servers add their own)."""
        return {}


# The most queued messages written to the socket together (each still its own frame).
_WRITE_RUN = 256


def _outgoing_run(queue: asyncio.Queue[Any], first: Outgoing) -> tuple[list[Outgoing], Any]:
    """`first` and the Outgoing items queued right behind it (up to `_WRITE_RUN`), and the first
    other item taken from the queue meanwhile (None if none), to be handled next."""
    run = [first]
    while len(run) < _WRITE_RUN:
        try:
            item = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        if not isinstance(item, Outgoing):
            return run, item
        run.append(item)
    return run, None


async def _send_outgoing(conn: ClientConn, run: list[Outgoing]) -> None:
    """Render and send each message of `run` as its own text frame, written to the socket in one
    go: a burst then costs the server one write and one drain, not one per message (a remote
    server's own work must not take the cores of the client it is measuring)."""
    sent = []
    async with conn.ws.send_context():
        for item in run:
            payload = item.render()
            if payload is not None:
                conn.ws.protocol.send_text(
                    payload.encode() if isinstance(payload, str) else payload
                )
                sent.append(item)
    for item in sent:
        item.on_sent(conn)


class _TappedConnection(ServerConnection):
    """Reports pong frames to the owning server (websockets has no public hook for them)."""

    def process_event(self, event: Any) -> None:
        if self.request is not None and isinstance(event, Frame) and event.opcode is Opcode.PONG:
            tap = getattr(self.server, "pong_tap", None)
            if tap is not None:
                tap(self, bytes(event.data))
        super().process_event(event)


def json_response(status: int, body: Any) -> Response:
    """An HTTP response with a compact JSON body (for REST emulation on the websocket port)."""
    import orjson

    payload = orjson.dumps(body)
    return Response(
        status,
        _reason(status),
        Headers(
            [
                ("Content-Type", "application/json;charset=UTF-8"),
                ("Content-Length", str(len(payload))),
                ("Connection", "close"),
            ]
        ),
        payload,
    )


def text_response(
    status: int, text: str, content_type: str = "text/plain; charset=utf-8"
) -> Response:
    """A plain HTTP answer (for a request that is not a websocket upgrade)."""
    payload = text.encode()
    return Response(
        status,
        _reason(status),
        Headers(
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(payload))),
                ("Connection", "close"),
            ]
        ),
        payload,
    )


def _reason(status: int) -> str:
    import http

    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


class BackgroundWsServer:
    """An asyncio `websockets` server on a background thread with synchronous controls.

    Subclasses implement `_make_conn`, `_on_message` and optionally `_process_request`,
    `_on_started`, `_on_stopping`, `_on_open`, `_on_close`.
    """

    thread_name = "ws-server"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ping_interval: float | None = None,
        pong_timeout: float | None = None,
        max_connection_age_s: float | None = None,
        close_timeout: float = 2.0,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._ping_interval = ping_interval
        self._pong_timeout = pong_timeout
        self._max_age = max_connection_age_s
        self._close_timeout = close_timeout

        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._conns: dict[int, ClientConn] = {}
        self._by_ws: dict[ServerConnection, ClientConn] = {}
        self._conn_ids = itertools.count(1)
        self._received: list[Received] = []
        self._pings_sent = 0
        self._total_connections = 0

        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._ws_server: Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Self:
        """Bind and serve; returns once the port is bound (reuses the port after a `stop()`)."""
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._ready.clear()
        self._startup_error = None
        self._thread = threading.Thread(
            target=self._thread_main, name=self.thread_name, daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{type(self).__name__} did not start within {timeout}s")
        if self._startup_error is not None:
            self._thread.join(timeout)
            self._thread = None
            raise RuntimeError(f"{type(self).__name__} failed to start") from self._startup_error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection (1001 going away), stop the loop and join the thread."""
        thread = self._thread
        if thread is None:
            return
        loop, stop_event = self._loop, self._stop_event
        if loop is not None and stop_event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"{type(self).__name__} did not stop within {timeout}s")
        self._thread = None
        self._loop = None
        with self._cond:
            self._conns.clear()
            self._by_ws.clear()
            self._cond.notify_all()

    def restart(self, timeout: float = 10.0) -> Self:
        """`stop()` then `start()` on the same port: clients see a server restart."""
        self.stop(timeout)
        return self.start(timeout)

    @property
    def running(self) -> bool:
        """True while the server is serving."""
        return self._thread is not None and self._ready.is_set()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            if not self._ready.is_set():
                self._startup_error = exc
                self._ready.set()
            else:
                print(f"{type(self).__name__} loop crashed: {exc!r}", file=sys.stderr)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        port = self._port if self._port is not None else self._requested_port
        self._ws_server = await serve(
            self._handler,
            self.host,
            port,
            process_request=self._process_request,
            create_connection=_TappedConnection,
            ping_interval=None,  # our own keepalive, see _housekeeper
            ping_timeout=None,
            close_timeout=self._close_timeout,
            max_queue=None,
            compression=None,
            server_header=None,
        )
        self._ws_server.pong_tap = self._on_pong  # type: ignore[attr-defined]
        self._port = self._ws_server.sockets[0].getsockname()[1]
        await self._on_started()
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await self._on_stopping()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=self._close_timeout + 3)
            self._ws_server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._close_timeout + 3):
                    await self._ws_server.wait_closed()

    # -- hooks for subclasses --------------------------------------------------------------

    async def _on_started(self) -> None:
        return None

    async def _on_stopping(self) -> None:
        return None

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        return None

    def _make_conn(self, conn_id: int, ws: ServerConnection) -> ClientConn:
        return ClientConn(conn_id, ws)

    async def _on_open(self, conn: ClientConn) -> None:
        return None

    async def _on_message(self, conn: ClientConn, message: str | bytes) -> None:
        return None

    def _on_close(self, conn: ClientConn) -> None:
        return None

    # -- connection handling ---------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _handler(self, ws: ServerConnection) -> None:
        conn = self._make_conn(next(self._conn_ids), ws)
        with self._cond:
            self._conns[conn.id] = conn
            self._by_ws[ws] = conn
            self._total_connections += 1
            self._cond.notify_all()
        conn.tasks.append(asyncio.create_task(self._writer(conn)))
        conn.tasks.append(asyncio.create_task(self._housekeeper(conn)))
        try:
            await self._on_open(conn)
            async for message in ws:
                self._record(conn.id, "text" if isinstance(message, str) else "binary", message)
                await self._on_message(conn, message)
        except ConnectionClosed:
            pass
        finally:
            conn.closing = True
            for task in conn.tasks:
                task.cancel()
            await asyncio.gather(*conn.tasks, return_exceptions=True)
            with self._cond:
                self._conns.pop(conn.id, None)
                self._by_ws.pop(ws, None)
                self._on_close(conn)
                self._cond.notify_all()

    async def _writer(self, conn: ClientConn) -> None:
        ws = conn.ws
        held: Any = None  # an item taken from the queue behind a run of Outgoing ones
        try:
            while True:
                if held is None:
                    item = await conn.queue.get()
                else:
                    item, held = held, None
                if isinstance(item, str):
                    await ws.send(item)
                elif isinstance(item, Outgoing):
                    run, held = _outgoing_run(conn.queue, item)
                    await _send_outgoing(conn, run)
                elif isinstance(item, _Marker):
                    if not item.future.done():
                        item.future.set_result(None)
                elif isinstance(item, _RawItem):
                    await ws.send(item.data, text=item.text)
                elif isinstance(item, _CloseItem):
                    conn.closing = True
                    await ws.close(item.code, item.reason)
                    return
                elif isinstance(item, bytes):
                    await ws.send(item)
        except ConnectionClosed:
            pass
        finally:
            # resolve pending markers so nobody waits for a dead connection
            while not conn.queue.empty():
                item = conn.queue.get_nowait()
                if isinstance(item, _Marker) and not item.future.done():
                    item.future.set_result(None)

    async def _housekeeper(self, conn: ClientConn) -> None:
        loop = asyncio.get_running_loop()
        ping_interval = self._ping_interval
        next_ping = conn.opened + ping_interval if ping_interval else _INF
        outstanding: list[tuple[float, Awaitable[float]]] = []
        seq = itertools.count(1)
        try:
            while True:
                now = loop.time()
                outstanding = [(t, f) for t, f in outstanding if not f.done()]  # type: ignore[attr-defined]
                pong_timeout = self._pong_timeout
                if (
                    pong_timeout is not None
                    and outstanding
                    and now - outstanding[0][0] >= pong_timeout
                ):
                    await self._close_conn(conn, 1008, "pong timeout")
                    return
                max_age = self._max_age
                if max_age is not None and now - conn.opened >= max_age:
                    await self._close_conn(conn, 1001, "connection age limit")
                    return
                if now >= next_ping:
                    payload = f"{now_ms()}-{next(seq)}".encode()
                    outstanding.append((now, await conn.ws.ping(payload)))
                    with self._cond:
                        self._pings_sent += 1
                    next_ping = now + ping_interval if ping_interval else _INF
                    continue
                deadline = next_ping
                if pong_timeout is not None and outstanding:
                    deadline = min(deadline, outstanding[0][0] + pong_timeout)
                if max_age is not None:
                    deadline = min(deadline, conn.opened + max_age)
                conn.wake.clear()
                await wait_event(conn.wake, None if deadline == _INF else max(0.0, deadline - now))
        except ConnectionClosed:
            return

    async def _close_conn(self, conn: ClientConn, code: int, reason: str) -> None:
        conn.closing = True
        with contextlib.suppress(ConnectionClosed):
            await conn.ws.close(code, reason)

    def _on_pong(self, ws: ServerConnection, payload: bytes) -> None:
        conn = self._by_ws.get(ws)
        if conn is not None:
            self._record(conn.id, "pong", payload)

    def _record(self, conn_id: int, kind: str, data: str | bytes) -> None:
        with self._cond:
            self._received.append(Received(conn_id, kind, data, time.time()))
            self._cond.notify_all()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _open_conns(self) -> list[ClientConn]:
        return [c for c in self._conns.values() if not c.closing]

    # -- cross-thread helpers ----------------------------------------------------------------

    def _call(self, fn: Callable[[], T | Awaitable[T]], timeout: float = 10.0) -> T:
        """Run `fn` on the server's loop and return its (awaited) result."""
        loop = self._loop
        if loop is None or not self.running:
            raise RuntimeError(f"{type(self).__name__} is not running")

        async def runner() -> T:
            result = fn()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                return await result
            return result  # type: ignore[return-value]

        if threading.current_thread() is self._thread:
            raise RuntimeError("_call() cannot be used from the server's own loop")
        return asyncio.run_coroutine_threadsafe(runner(), loop).result(timeout)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until `predicate()` is true (re-checked on every server state change)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # state changes notify; the short cap also covers changes made by other threads
                self._cond.wait(min(remaining, 0.05))
            return True

    def wait_connections(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until exactly `n` connections are open."""
        return self.wait_for(lambda: self.connections == n, timeout)

    # -- public state ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on (once started)."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} has not been started")
        return self._port

    @property
    def url(self) -> str:
        """Base websocket URL, e.g. ``ws://127.0.0.1:9001`` (documented paths are appended)."""
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        """The HTTP root URL on the same port."""
        return f"http://{self.host}:{self.port}"

    @property
    def connections(self) -> int:
        """Number of open websocket connections."""
        with self._cond:
            return sum(1 for c in self._conns.values() if not c.closing)

    @property
    def total_connections(self) -> int:
        """Connections accepted since the object was created (across restarts)."""
        with self._cond:
            return self._total_connections

    @property
    def pings_sent(self) -> int:
        """How many pings the server sent."""
        with self._cond:
            return self._pings_sent

    @property
    def received(self) -> list[Received]:
        """Everything clients sent (messages and pongs), in arrival order."""
        with self._cond:
            return list(self._received)

    def clear_received(self) -> None:
        """Forget every message received so far."""
        with self._cond:
            self._received.clear()

    def clients(self) -> list[ClientInfo]:
        """Snapshots of the open connections, oldest first."""
        with self._cond:
            return [
                ClientInfo(c.id, c.path, dict(c.headers), c.connected_at, c.details())
                for c in self._conns.values()
                if not c.closing
            ]

    @property
    def max_connection_age_s(self) -> float | None:
        """Connections older than this are closed (None: never)."""
        return self._max_age

    @max_connection_age_s.setter
    def max_connection_age_s(self, value: float | None) -> None:
        self._max_age = value
        if self.running:
            self._call(self._wake_all)

    def _wake_all(self) -> None:
        for conn in self._conns.values():
            conn.wake.set()

    # -- test controls ---------------------------------------------------------------------

    def drop_all(self) -> int:
        """Abort every connection's TCP socket (no close frame); returns how many."""

        def drop() -> int:
            conns = self._open_conns()
            for conn in conns:
                conn.closing = True
                conn.ws.transport.abort()
            return len(conns)

        return self._call(drop)

    def close_all(self, code: int = 1000, reason: str = "", *, flush: bool = True) -> int:
        """Close every connection with a close frame `code`; returns how many.

        With `flush`, messages already queued for a connection are sent before the close frame.
        """

        async def close() -> int:
            conns = self._open_conns()
            if flush:
                for conn in conns:
                    conn.enqueue(_CloseItem(code, reason))
                    conn.closing = True
            else:
                await asyncio.gather(
                    *(self._close_conn(c, code, reason) for c in conns), return_exceptions=True
                )
            return len(conns)

        return self._call(close)

    def inject_malformed(self, raw: str | bytes, *, text: bool | None = None) -> int:
        """Send `raw` as is to every client; returns how many got it.

        A str goes out as a text frame, bytes as a binary frame; `text=True` sends bytes in a
        text frame unchecked (e.g. invalid UTF-8, a protocol error the client must survive).
        """

        def inject() -> int:
            conns = self._open_conns()
            for conn in conns:
                conn.enqueue(_RawItem(raw, text))
            return len(conns)

        return self._call(inject)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far has been written to every open connection."""

        async def wait_markers() -> None:
            loop = asyncio.get_running_loop()
            futures = []
            for conn in self._open_conns():
                fut: asyncio.Future[None] = loop.create_future()
                conn.enqueue(_Marker(fut))
                futures.append(fut)
            if futures:
                await asyncio.wait(futures, timeout=timeout)

        self._call(wait_markers, timeout + 1)
