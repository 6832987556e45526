"""What one websocket connection of a replay server is made of (`replay.ws_server` runs them):
the queue items a connection's writer sends, the connection's state, the writer itself, and the
plain HTTP answers a replay server gives on its websocket port.

Each accepted connection has an outbound queue drained by one writer task (`write_queue`), so a
slow client never stalls the producer and every message a connection gets is sent in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Response

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


class Marker:
    """Queue item resolved when the writer reaches it (everything before it was sent)."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future


class CloseItem:
    """Queue item: a close frame, sent after everything queued before it."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class RawItem:
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


class TappedConnection(ServerConnection):
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


async def write_queue(conn: ClientConn) -> None:
    """The connection's writer task: sends what is queued, in order, until a close item or the
    connection closes; then resolves the markers left, so nobody waits for a dead connection."""
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
            elif isinstance(item, Marker):
                if not item.future.done():
                    item.future.set_result(None)
            elif isinstance(item, RawItem):
                await ws.send(item.data, text=item.text)
            elif isinstance(item, CloseItem):
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
            if isinstance(item, Marker) and not item.future.done():
                item.future.set_result(None)


@dataclass
class KeepAlive:
    """How a server keeps its connections alive (None: never); read on every turn of
    `keep_alive`, so a change applies to open connections once they are woken."""

    ping_interval: float | None
    pong_timeout: float | None
    max_age: float | None


async def close_connection(conn: ClientConn, code: int, reason: str) -> None:
    """Close `conn` with a close frame `code` now (queued messages are dropped)."""
    conn.closing = True
    with contextlib.suppress(ConnectionClosed):
        await conn.ws.close(code, reason)


async def keep_alive(conn: ClientConn, rules: KeepAlive, on_ping: Callable[[], None]) -> None:
    """The connection's housekeeping task: a ping (unique payload) every `ping_interval`; the
    connection closed when its oldest unanswered ping is older than `pong_timeout` (1008 "pong
    timeout") or it is older than `max_age` (1001). Woken by `conn.wake` when the rules change."""
    loop = asyncio.get_running_loop()
    ping_interval = rules.ping_interval
    next_ping = conn.opened + ping_interval if ping_interval else _INF
    outstanding: list[tuple[float, Awaitable[float]]] = []
    seq = itertools.count(1)
    try:
        while True:
            now = loop.time()
            outstanding = [(t, f) for t, f in outstanding if not f.done()]  # type: ignore[attr-defined]
            pong_timeout = rules.pong_timeout
            if pong_timeout is not None and outstanding and now - outstanding[0][0] >= pong_timeout:
                await close_connection(conn, 1008, "pong timeout")
                return
            max_age = rules.max_age
            if max_age is not None and now - conn.opened >= max_age:
                await close_connection(conn, 1001, "connection age limit")
                return
            if now >= next_ping:
                payload = f"{now_ms()}-{next(seq)}".encode()
                outstanding.append((now, await conn.ws.ping(payload)))
                on_ping()
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
