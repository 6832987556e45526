"""The websocket side of the Binance replay: a connection's streams and format, the messages
queued for it (rendered when written, so ``E`` is the send time), the live control messages
(SUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY ``combined``...) with Binance's error replies, the
routes (``/stream?streams=``, ``/ws/<streams>``), and the benchmark burst.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
from websockets.asyncio.server import ServerConnection

from ingestion_pipelines.feeds.binance.replay.market import BenchmarkRun, SymbolState, Trade
from ingestion_pipelines.replay.ws_connection import ClientConn, Marker, Outgoing, now_ms

MarkSent = Callable[[Trade], None]


class BinanceConn(ClientConn):
    """A connection with its trade streams and whether events come wrapped (combined streams)."""

    def __init__(self, conn_id: int, ws: ServerConnection) -> None:
        super().__init__(conn_id, ws)
        combined, streams = getattr(ws, "binance_route", (True, []))
        self.combined: bool = combined
        self.streams: list[str] = list(dict.fromkeys(streams))

    def details(self) -> dict[str, Any]:
        """The connection's streams and format (`clients()`)."""
        return {"streams": list(self.streams), "combined": self.combined}


class TradeOut(Outgoing):
    """A trade event, rendered with the time it is written."""

    __slots__ = ("mark_sent", "trade", "combined", "stream")

    def __init__(self, mark_sent: MarkSent, trade: Trade, combined: bool, stream: str) -> None:
        self.mark_sent = mark_sent
        self.trade = trade
        self.combined = combined
        self.stream = stream

    def render(self) -> bytes:
        """The event, wrapped for a combined stream, ``E`` now."""
        data = self.trade.event(now_ms())
        return orjson.dumps({"stream": self.stream, "data": data} if self.combined else data)

    def on_sent(self, conn: ClientConn) -> None:
        """The trade counts as sent."""
        self.mark_sent(self.trade)


class BenchOut(Outgoing):
    """A pre-built trade message; only the send time is spliced in."""

    __slots__ = ("mark_sent", "trade", "prefix", "suffix", "sent_ms")

    def __init__(
        self,
        mark_sent: MarkSent,
        trade: Trade,
        prefix: bytes,
        suffix: bytes,
        sent_ms: dict[int, int],
    ) -> None:
        self.mark_sent = mark_sent
        self.trade = trade
        self.prefix = prefix
        self.suffix = suffix
        self.sent_ms = sent_ms

    def render(self) -> bytes:
        """The message with ``E`` now (the first send time of the trade is kept)."""
        ms = now_ms()
        self.sent_ms.setdefault(self.trade.id, ms)
        return b"%s%d%s" % (self.prefix, ms, self.suffix)

    def on_sent(self, conn: ClientConn) -> None:
        """The trade counts as sent."""
        self.mark_sent(self.trade)


class EventOut(Outgoing):
    """A connection event (``serverShutdown``) whose ``E`` is the send time."""

    __slots__ = ("event",)

    def __init__(self, event: str) -> None:
        self.event = event

    def render(self) -> bytes:
        """``{"e": <event>, "E": <now>}``."""
        return orjson.dumps({"e": self.event, "E": now_ms()})


def bench_parts(trade: Trade, stream: str, combined: bool) -> tuple[bytes, bytes]:
    """The serialized trade message split around its ``E`` (spliced in at send time)."""
    marker = -7_777_777_777_777  # placeholder for E, split out of the serialized message
    data = trade.event(marker)
    raw = orjson.dumps({"stream": stream, "data": data} if combined else data)
    prefix, suffix = raw.split(str(marker).encode(), 1)
    return prefix, suffix


def stream_route(path: str, query: str) -> tuple[bool, list[str]] | None:
    """(combined, streams) of a websocket path: ``/stream?streams=a/b`` (combined) or
    ``/ws/a/b`` (raw); None: not a stream path."""
    if path in ("/stream", "/stream/"):
        streams = parse_qs(query).get("streams", [""])[-1]
        return True, [s for s in streams.split("/") if s]
    if path == "/ws" or path.startswith("/ws/"):
        rest = path[3:].strip("/")
        return False, [s for s in rest.split("/") if s]
    return None


def control_reply(
    conn: BinanceConn, message: str | bytes, on_subscriptions_changed: Callable[[], None]
) -> dict[str, Any] | None:
    """The answer to a control message (SUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY...), with
    Binance's error replies; None: no answer."""
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
        on_subscriptions_changed()
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


async def send_burst(
    run: BenchmarkRun,
    sym: SymbolState,
    targets: list[BinanceConn],
    trades: list[Trade],
    parts: tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]],
    cond: threading.Condition,
    mark_sent: MarkSent,
) -> None:
    """Journal and queue `trades` to `targets` as fast as possible (or at `run.rate` per second),
    then wait until every target has written them; `parts`: the pre-built (combined, raw)
    messages of each trade. `cond` is the server's lock, notified after each step."""
    combined, raw = parts
    loop = asyncio.get_running_loop()
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
        with cond:
            sym.journal.extend(trades[i:due])
        for j in range(i, due):
            for conn in targets:
                prefix, suffix = combined[j] if conn.combined else raw[j]
                conn.enqueue(BenchOut(mark_sent, trades[j], prefix, suffix, run.sent_ms))
        i = due
        with cond:
            cond.notify_all()
        await asyncio.sleep(0)
    futures = []
    for conn in targets:
        fut: asyncio.Future[None] = loop.create_future()
        conn.enqueue(Marker(fut))
        futures.append(fut)
    if futures:
        await asyncio.gather(*futures)
    run.finished_at = time.time()
