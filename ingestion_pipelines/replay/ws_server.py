"""The generic websocket replay server the feed folders build on (`feeds/binance/replay/`,
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
from typing import Any, Self, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ingestion_pipelines.replay.ws_connection import (
    ClientConn,
    ClientInfo,
    CloseItem,
    KeepAlive,
    Marker,
    Outgoing,
    RawItem,
    Received,
    TappedConnection,
    close_connection,
    json_response,
    keep_alive,
    now_ms,
    text_response,
    wait_event,
    write_queue,
)

# The connection's parts are re-exported: the feeds' servers import them from here.
__all__ = [
    "BackgroundWsServer",
    "ClientConn",
    "ClientInfo",
    "Outgoing",
    "Received",
    "json_response",
    "now_ms",
    "text_response",
    "wait_event",
]

T = TypeVar("T")


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
        self._keepalive = KeepAlive(ping_interval, pong_timeout, max_connection_age_s)
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
            create_connection=TappedConnection,
            ping_interval=None,  # our own keepalive, see ws_connection.keep_alive
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
        conn.tasks.append(asyncio.create_task(write_queue(conn)))
        conn.tasks.append(asyncio.create_task(keep_alive(conn, self._keepalive, self._count_ping)))
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

    def _count_ping(self) -> None:
        with self._cond:
            self._pings_sent += 1

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
        return self._keepalive.max_age

    @max_connection_age_s.setter
    def max_connection_age_s(self, value: float | None) -> None:
        self._keepalive.max_age = value
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
                    conn.enqueue(CloseItem(code, reason))
                    conn.closing = True
            else:
                await asyncio.gather(
                    *(close_connection(c, code, reason) for c in conns), return_exceptions=True
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
                conn.enqueue(RawItem(raw, text))
            return len(conns)

        return self._call(inject)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far has been written to every open connection."""

        async def wait_markers() -> None:
            loop = asyncio.get_running_loop()
            futures = []
            for conn in self._open_conns():
                fut: asyncio.Future[None] = loop.create_future()
                conn.enqueue(Marker(fut))
                futures.append(fut)
            if futures:
                await asyncio.wait(futures, timeout=timeout)

        self._call(wait_markers, timeout + 1)
