"""`ingest live`: the Starlette app relaying Redis channels to dashboards (read-only).

    GET /stream?channel=ticks:*          Server-Sent Events; `Last-Event-ID` resumes from the buffer
    GET /ws?channel=bars:binance:*       the same over a WebSocket (`?last_event_id=` resumes)
    GET /status                          Redis connection, clients, messages relayed (JSON)
    GET /bars?source=binance&symbol=BTCUSDT&minutes=60   recent rows of trade_bar_1m (JSON)
    GET /                                the live page (plain HTML + JS)

`channel` may be repeated; without it every relayed channel (`ticks:*`, `bars:*`,
`progress:*`) is sent. Each message is the JSON `{"id", "channel", "data"}` where `data` is what
was published. Heartbeats: an SSE comment, or `{"event": "heartbeat"}` on the WebSocket.
A client too slow to take its messages is dropped with `event: dropped` (WebSocket close 1013)
and may reconnect with its last id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from importlib import resources
from urllib.parse import urlsplit

import orjson
from loguru import logger
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from ingestion_pipelines.live.hub import NO_REDIS, Client, Gap, Hub, PatternError, check_patterns
from ingestion_pipelines.redaction import redact, register_secret

HEARTBEAT_S = 15.0
FAREWELL_S = 1.0  # how long a dropped client's last words may wait on its socket
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
]


def _heartbeat_sse() -> bytes:
    return b": heartbeat\n\n"


def _event_sse(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()


async def _relay(
    client: Client,
    gap: Gap | None,
    heartbeat_s: float,
    emit_message: Callable[[object], Awaitable[None]],
    emit_gap: Callable[[Gap], Awaitable[None]],
    emit_heartbeat: Callable[[], Awaitable[None]],
) -> None:
    if gap is not None:
        await emit_gap(gap)
    while True:
        message = await client.next(heartbeat_s)
        if message is None:
            await emit_heartbeat()
        elif isinstance(message, Gap):
            await emit_gap(message)
        else:
            await emit_message(message)


async def _until_first(*aws: Awaitable[object]) -> None:
    """Run `aws` until the first ends, then cancel the rest. A failed send (the client went
    away mid-write) ends the relay like a disconnect does."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            logger.debug("live client gone: {!r}", task.exception())


class EventStream:
    """The SSE response (an ASGI app) of one client: relays until it disconnects or is
    dropped. Not a StreamingResponse: a dropped client must end even while a send waits on
    its full socket."""

    def __init__(self, hub: Hub, client: Client, gap: Gap | None, heartbeat_s: float):
        self.hub = hub
        self.client = client
        self.gap = gap
        self.heartbeat_s = heartbeat_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def body(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        try:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            await body(b"retry: 2000\n\n")
            await _until_first(
                _relay(
                    self.client,
                    self.gap,
                    self.heartbeat_s,
                    lambda m: body(m.sse),
                    lambda g: body(_event_sse("gap", g.json())),
                    lambda: body(_heartbeat_sse()),
                ),
                disconnected(),
                self.client.gone.wait(),
            )
            last = b""
            if self.client.dropped:
                reason = orjson.dumps({"event": "dropped", "reason": self.client.dropped})
                last = _event_sse("dropped", reason.decode())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": last, "more_body": False}),
                    FAREWELL_S,
                )
        finally:
            self.hub.unsubscribe(self.client)


async def _bars(request: Request, database_url: str) -> Response:
    """`/bars?source=&symbol=&minutes=`: recent one-minute bars from the database."""
    from starlette.concurrency import run_in_threadpool

    from ingestion_pipelines.live.history import recent_bars

    source = request.query_params.get("source")
    symbol = request.query_params.get("symbol")
    if not source or not symbol:
        return PlainTextResponse("source and symbol are required", status_code=400)
    try:
        minutes = int(request.query_params.get("minutes", "60"))
    except ValueError:
        return PlainTextResponse("minutes: a whole number", status_code=400)
    try:
        rows = await run_in_threadpool(lambda: recent_bars(database_url, source, symbol, minutes))
    except Exception as exc:  # noqa: BLE001 - say why; the live relay goes on
        message = f"trade_bar_1m not readable: {redact(str(exc)).splitlines()[0][:300]}"
        return PlainTextResponse(message, status_code=503)
    return JSONResponse(rows)


async def _serve_websocket(ws: WebSocket, hub: Hub, heartbeat_s: float) -> None:
    """`/ws`: relay the channels asked for to one websocket client until it leaves or lags."""
    await ws.accept()
    if not hub.redis_url:
        await ws.send_text(orjson.dumps({"event": "error", "message": NO_REDIS}).decode())
        await ws.close(1011, "INGEST_REDIS_URL is not set")
        return
    try:
        patterns = check_patterns(ws.query_params.getlist("channel"))
    except PatternError as exc:
        await ws.send_text(orjson.dumps({"event": "error", "message": str(exc)}).decode())
        await ws.close(1008, "bad channel pattern")
        return
    client, gap = hub.subscribe(patterns, ws.query_params.get("last_event_id"))

    async def disconnected() -> None:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass  # read-only: what a client sends is ignored

    try:
        await _until_first(
            _relay(
                client,
                gap,
                heartbeat_s,
                lambda m: ws.send_text(m.json),
                lambda g: ws.send_text(g.json()),
                lambda: ws.send_text('{"event":"heartbeat"}'),
            ),
            disconnected(),
            client.gone.wait(),
        )
        if client.dropped:
            reason = orjson.dumps({"event": "dropped", "reason": client.dropped}).decode()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.send_text(reason), FAREWELL_S)
                await asyncio.wait_for(ws.close(1013, "too slow: dropped"), FAREWELL_S)
    finally:
        hub.unsubscribe(client)


def create_app(
    redis_url: str | None,
    *,
    heartbeat_s: float = HEARTBEAT_S,
    replay_size: int | None = None,
    queue_size: int | None = None,
    bars_database_url: str | None = None,
) -> Starlette:
    """The app relaying `redis_url`'s channels (None: every relay answers with NO_REDIS);
    `/bars` reads `bars_database_url` (default: INGEST_DATABASE_URL)."""
    sizes = {k: v for k, v in (("replay_size", replay_size), ("queue_size", queue_size)) if v}
    hub = Hub(redis_url, **sizes)
    if bars_database_url:
        register_secret(urlsplit(bars_database_url).password)

    def bars_url() -> str:
        from ingestion_pipelines.settings import get_settings

        return bars_database_url or get_settings().database_url

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        task = asyncio.create_task(hub.run(), name="live-redis-reader")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def page(request: Request) -> Response:
        html = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
        return HTMLResponse(html)

    async def status(request: Request) -> Response:
        return JSONResponse(hub.describe())

    async def bars(request: Request) -> Response:
        return await _bars(request, bars_url())

    async def stream(request: Request) -> Response | EventStream:
        if not hub.redis_url:
            return PlainTextResponse(NO_REDIS, status_code=503)
        try:
            patterns = check_patterns(request.query_params.getlist("channel"))
        except PatternError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        last_id = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        client, gap = hub.subscribe(patterns, last_id)
        return EventStream(hub, client, gap, heartbeat_s)

    async def websocket(ws: WebSocket) -> None:
        await _serve_websocket(ws, hub, heartbeat_s)

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/status", status),
            Route("/bars", bars),
            Route("/stream", stream),
            WebSocketRoute("/ws", websocket),
        ],
        lifespan=lifespan,
    )
    app.state.hub = hub
    return app
