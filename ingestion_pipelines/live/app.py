"""`ingest live`: the Starlette app relaying Redis channels to dashboards (read-only).

    GET /stream?channel=ticks:*          Server-Sent Events; `Last-Event-ID` resumes from the buffer
    GET /ws?channel=bars:binance:*       the same over a WebSocket (`?last_event_id=` resumes)
    GET /status                          Redis connection, clients, messages relayed (JSON)
    GET /metrics                         the same and the refusals, Prometheus text format
    GET /bars?source=binance&symbol=BTCUSDT&minutes=60   recent rows of trade_bar_1m (JSON)
    GET /                                the live page (plain HTML + JS)
    GET /healthz                         "ok" (no token needed, says nothing else)

`channel` may be repeated; without it every channel the token's role may read is sent. Each
message is the JSON `{"id", "channel", "data"}` where `data` is what was published, on one line.
Heartbeats: an SSE comment, or `{"event": "heartbeat"}` on the WebSocket. A client too slow to
take its messages is dropped with `event: dropped` (WebSocket close 1013) and may reconnect with
its last id; so is one whose token expires. Tokens, roles and origins: `auth.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TypeVar
from urllib.parse import urlsplit

import orjson
from loguru import logger
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from ingestion_pipelines.core.redaction import redact, register_secret
from ingestion_pipelines.live.auth import COOKIE, Identity, LiveAuth, Refused
from ingestion_pipelines.live.collector import Collector
from ingestion_pipelines.live.hub import NO_REDIS, Client, Hub, LimitError, Limits
from ingestion_pipelines.live.messages import (
    EventIdError,
    Gap,
    Message,
    PatternError,
    check_patterns,
)

HEARTBEAT_S = 15.0
FAREWELL_S = 1.0  # how long a dropped client's last words may wait on its socket
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
]
HEARTBEAT_SSE = b": heartbeat\n\n"
HEARTBEAT_WS = '{"event":"heartbeat"}'
T = TypeVar("T", bytes, list)


def _event_sse(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()


def _text(item: Message | Gap) -> str:
    return item.json if isinstance(item, Message) else item.json()


async def _relay(
    client: Client,
    heartbeat_s: float,
    take: Callable[[], T],
    emit: Callable[[T], Awaitable[None]],
    emit_heartbeat: Callable[[], Awaitable[None]],
) -> None:
    """Send the client what arrives, in batches (what `take` gives: everything since the last
    one), and a heartbeat when nothing was sent for `heartbeat_s`."""
    clock = time.monotonic
    last = clock()
    while True:
        items = take()
        if items:
            await emit(items)
            last = clock()
            continue
        if clock() - last >= heartbeat_s:
            await emit_heartbeat()
            last = clock()
            continue  # something may have come while it was written
        await client.wait()


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

    def __init__(self, hub: Hub, client: Client, heartbeat_s: float):
        self.hub = hub
        self.client = client
        self.heartbeat_s = heartbeat_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub = self.hub

        async def body(chunk: bytes) -> None:
            hub.writes += 1
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
                    self.heartbeat_s,
                    self.client.take_sse,
                    body,
                    lambda: body(HEARTBEAT_SSE),
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


def _refusal(status: int, reason: str) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="ingest live"'} if status == 401 else None
    return PlainTextResponse(reason, status_code=status, headers=headers)


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


class Gate:
    """Who may connect: tokens and origins (`LiveAuth`), then the hub's caps; every refusal
    counted in the hub for /metrics."""

    def __init__(self, hub: Hub, auth: LiveAuth):
        self.hub = hub
        self.auth = auth

    def identify(self, conn: HTTPConnection) -> Identity:
        address = conn.client.host if conn.client else None
        try:
            return self.auth.identify(conn.headers, conn.query_params, conn.cookies, address)
        except Refused as refused:
            self.hub.refused[refused.kind] += 1
            raise

    def open_relay(self, conn: HTTPConnection, last_id: str | None) -> Client:
        """A new relay client for `conn` (a /stream request or a /ws handshake); `Refused`,
        `PatternError`, `PermissionError`, `EventIdError` or `LimitError` otherwise."""
        try:
            self.auth.check_origin(conn.headers)
        except Refused as refused:
            self.hub.refused[refused.kind] += 1
            raise
        identity = self.identify(conn)
        try:
            patterns = check_patterns(conn.query_params.getlist("channel"), identity.kinds)
        except PermissionError:
            self.hub.refused["role"] += 1
            raise
        client, gap = self.hub.subscribe(
            patterns,
            last_id,
            user=identity.user,
            kinds=identity.kinds,
            expires_at=identity.expires_at,
        )
        if gap is not None:
            client.first.insert(0, gap)
        return client


def _refused_answer(exc: Exception) -> tuple[int, str]:
    """(HTTP status, text) of a refused relay."""
    if isinstance(exc, Refused | LimitError):
        return exc.status, exc.reason
    if isinstance(exc, PermissionError):
        return 403, str(exc)
    return 400, str(exc)  # PatternError, EventIdError


REFUSALS = (Refused, LimitError, PatternError, PermissionError, EventIdError)


async def _serve_websocket(ws: WebSocket, hub: Hub, gate: Gate, heartbeat_s: float) -> None:
    """`/ws`: relay the channels asked for to one websocket client until it leaves or lags."""
    try:
        if not hub.redis_url:
            gate.identify(ws)
            await ws.accept()
            await ws.send_text(orjson.dumps({"event": "error", "message": NO_REDIS}).decode())
            await ws.close(1011, "INGEST_REDIS_URL is not set")
            return
        client = gate.open_relay(ws, ws.query_params.get("last_event_id"))
    except REFUSALS as exc:
        status, text = _refused_answer(exc)
        if "websocket.http.response" in ws.scope.get("extensions", {}):
            await ws.send_denial_response(_refusal(status, text))
        else:
            await ws.close(1008, text[:120])
        return
    try:
        await ws.accept()

        async def disconnected() -> None:
            while (await ws.receive())["type"] != "websocket.disconnect":
                pass  # read-only: what a client sends is ignored

        async def emit(items: list[Message | Gap]) -> None:
            hub.writes += 1
            for item in items:
                await ws.send_text(_text(item))

        await _until_first(
            _relay(client, heartbeat_s, client.take, emit, lambda: ws.send_text(HEARTBEAT_WS)),
            disconnected(),
            client.gone.wait(),
        )
        if client.dropped:
            reason = orjson.dumps({"event": "dropped", "reason": client.dropped}).decode()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.send_text(reason), FAREWELL_S)
                await asyncio.wait_for(ws.close(1013, client.dropped[:120]), FAREWELL_S)
    finally:
        hub.unsubscribe(client)


def _limits_from_settings() -> Limits:
    from ingestion_pipelines.core.settings import get_settings

    s = get_settings()
    return Limits(s.live_max_clients, s.live_max_per_user, s.live_max_subscriptions)


def _page(request: Request, identity: Identity) -> Response:
    """The live page; opened with `?token=`, the token becomes its HttpOnly cookie, so the
    page's own requests (/stream, /status, /bars) carry it without script access to it."""
    html = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    response = HTMLResponse(html)
    token = request.query_params.get("token")
    if token and identity.expires_at:
        https = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
        response.set_cookie(
            COOKIE,
            token,
            max_age=max(0, int(identity.expires_at - time.time())),
            httponly=True,
            samesite="strict",
            secure=https,
        )
    return response


class _Endpoints:
    """The routes of one relay, around its hub and gate."""

    def __init__(
        self,
        hub: Hub,
        gate: Gate,
        heartbeat_s: float,
        bars_database_url: str | None,
        collector: Collector,
    ):
        self.hub = hub
        self.collector = collector
        self.gate = gate
        self.heartbeat_s = heartbeat_s
        self.bars_database_url = bars_database_url

    def guarded(
        self, handler: Callable[[Request, Identity], Awaitable[Response] | Response]
    ) -> Callable[[Request], Awaitable[Response]]:
        """`handler` behind a valid token (when tokens are asked for)."""

        async def endpoint(request: Request) -> Response:
            try:
                identity = self.gate.identify(request)
            except Refused as refused:
                return _refusal(refused.status, refused.reason)
            answer = handler(request, identity)
            return await answer if inspect.isawaitable(answer) else answer

        return endpoint

    def status(self, request: Request, identity: Identity) -> Response:
        return JSONResponse(
            {**self.hub.describe(), "garbage_collection": self.collector.describe()}
        )

    def metrics(self, request: Request, identity: Identity) -> Response:
        from ingestion_pipelines.live.metrics import CONTENT_TYPE, render

        return Response(render(self.hub), media_type=CONTENT_TYPE)

    async def bars(self, request: Request, identity: Identity) -> Response:
        from ingestion_pipelines.core.settings import get_settings

        return await _bars(request, self.bars_database_url or get_settings().database_url)

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def stream(self, request: Request) -> Response | EventStream:
        if not self.hub.redis_url:
            try:
                self.gate.identify(request)
            except Refused as refused:
                return _refusal(refused.status, refused.reason)
            return PlainTextResponse(NO_REDIS, status_code=503)
        last_id = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        try:
            client = self.gate.open_relay(request, last_id)
        except REFUSALS as exc:
            return _refusal(*_refused_answer(exc))
        return EventStream(self.hub, client, self.heartbeat_s)

    async def websocket(self, ws: WebSocket) -> None:
        await _serve_websocket(ws, self.hub, self.gate, self.heartbeat_s)

    def routes(self) -> list[Route | WebSocketRoute]:
        return [
            Route("/", self.guarded(_page)),
            Route("/status", self.guarded(self.status)),
            Route("/metrics", self.guarded(self.metrics)),
            Route("/bars", self.guarded(self.bars)),
            Route("/healthz", self.healthz),
            Route("/stream", self.stream),
            WebSocketRoute("/ws", self.websocket),
        ]


def create_app(
    redis_url: str | None,
    *,
    heartbeat_s: float = HEARTBEAT_S,
    replay_size: int | None = None,
    queue_size: int | None = None,
    bars_database_url: str | None = None,
    auth: LiveAuth | None = None,
    limits: Limits | None = None,
    flush_s: float | None = None,
) -> Starlette:
    """The app relaying `redis_url`'s channels (None: every relay answers with NO_REDIS);
    `/bars` reads `bars_database_url` (default: INGEST_DATABASE_URL). `auth` and `limits`
    default to INGEST_LIVE_JWT_SECRET / INGEST_LIVE_ORIGINS and INGEST_LIVE_MAX_*; `flush_s`
    (the most often a client gets a write) to the hub's FLUSH_S."""
    sizes = {k: v for k, v in (("replay_size", replay_size), ("queue_size", queue_size)) if v}
    if flush_s is not None:
        sizes["flush_s"] = flush_s
    hub = Hub(redis_url, heartbeat_s=heartbeat_s, limits=limits or _limits_from_settings(), **sizes)
    gate = Gate(hub, auth if auth is not None else LiveAuth.from_settings())
    if bars_database_url:
        register_secret(urlsplit(bars_database_url).password)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        # what is loaded by now lives as long as the process: out of the collector's full passes,
        # which otherwise walk it all while every client waits (a pause in the stream)
        gc.freeze()
        tasks = [
            asyncio.create_task(hub.run(), name="live-redis-reader"),
            asyncio.create_task(collector.run(), name="live-garbage-collector"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    collector = Collector()
    endpoints = _Endpoints(hub, gate, heartbeat_s, bars_database_url, collector)
    app = Starlette(routes=endpoints.routes(), lifespan=lifespan)
    app.state.hub = hub
    return app
