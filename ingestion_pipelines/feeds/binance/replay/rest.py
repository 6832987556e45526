"""The REST side of the Binance replay (like ``https://api.binance.com``):
``GET /api/v3/historicalTrades?symbol=BTCUSDT&fromId=N&limit=M`` (limit default 500, capped at
1000), ``GET /api/v3/trades``, ``/api/v3/ping``, ``/api/v3/time``, with Binance's error shapes
(``{"code":-1121,"msg":"Invalid symbol."}``, HTTP 400) and its rate-limit answers (429, 418).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from websockets.http11 import Response

from ingestion_pipelines.feeds.binance.replay.market import SymbolState, available_from
from ingestion_pipelines.replay.ws_connection import json_response

REST_DEFAULT_LIMIT = 500
REST_MAX_LIMIT = 1000
TRADE_PATHS = ("/api/v3/historicalTrades", "/api/v3/trades")


@dataclass(frozen=True)
class TradesQuery:
    """A valid trades request: the symbol, how many rows, and from which id (None: the newest)."""

    symbol: str
    limit: int
    from_id: int | None


def trades_query(path: str, query: str, symbols: Container[str]) -> TradesQuery | Response:
    """The request for `path` (one of TRADE_PATHS) with `query`, or the error Binance answers
    (checked in Binance's order: symbol missing, unknown, then limit, then fromId)."""
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    symbol = params.get("symbol", "")
    if not symbol:
        return rest_error(
            -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
        )
    if symbol not in symbols:
        return rest_error(-1121, "Invalid symbol.")
    limit = REST_DEFAULT_LIMIT
    if "limit" in params:
        if not params["limit"].isdigit():
            return _illegal_chars("limit")
        limit = int(params["limit"])
        if limit < 1:
            return rest_error(-1130, "Data sent for parameter 'limit' is not valid.")
        limit = min(limit, REST_MAX_LIMIT)
    from_id: int | None = None
    if "fromId" in params and path.endswith("historicalTrades"):
        if not params["fromId"].isdigit():
            return _illegal_chars("fromId")
        from_id = int(params["fromId"])
    return TradesQuery(symbol, limit, from_id)


def journal_page(sym: SymbolState, request: TradesQuery, history_limit: int | None) -> list[Any]:
    """The REST rows `request` gets from `sym`'s journal (call under the server's lock)."""
    low = available_from(sym, history_limit)
    high = sym.first_id + len(sym.journal)  # one past the newest journaled id
    start = max(low, high - request.limit if request.from_id is None else request.from_id)
    stop = min(high, start + request.limit)
    return [t.rest() for t in sym.journal[start - sym.first_id : stop - sym.first_id]]


def rest_error(code: int, msg: str, status: int = 400) -> Response:
    """Binance's error answer ``{"code": code, "msg": msg}``."""
    return json_response(status, {"code": code, "msg": msg})


def _illegal_chars(param: str) -> Response:
    return rest_error(
        -1100, f"Illegal characters found in parameter '{param}'; legal range is '^[0-9]{{1,20}}$'."
    )


def rest_failure(status: int) -> Response:
    """The answer to a request made to fail: rate-limited (429, 418, with Retry-After) or an
    internal error."""
    if status in (418, 429):
        response = rest_error(
            -1003,
            "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
            "Please use WebSocket Streams for live updates to avoid polling the API.",
            status,
        )
        response.headers["Retry-After"] = "1"
        return response
    return rest_error(
        -1001, "Internal error; unable to process your request. Please try again.", status
    )
