"""A generic daily-prices endpoint for the crawl-scale benchmark and the engine's tests: one
request per symbol and window, like a per-stock end-of-day history API, with as many symbols and
days as asked (no recording: the values are derived from the symbol and the day).

`GET /bench/eod?symbol=<int>&from=YYYY-MM-DD&to=YYYY-MM-DD` →
`{"symbol": 7, "total": 2, "data": [{"symbol": 7, "date": "2024-01-02", "close": "10.0702"}, …]}`.
Every calendar day in `from..to` (inclusive) has a row; the values are exact decimals as text.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from ingestion_pipelines.replay.routes import ReplayRequest, Response, route

if TYPE_CHECKING:
    from ingestion_pipelines.replay.dataset import ReplayDataset

PATH = "/bench/eod"


def close(symbol: int, day: date) -> str:
    """The close of `symbol` on `day`: deterministic, four decimals."""
    return f"{10 + symbol % 90}.{(symbol * 7919 + day.toordinal() * 104729) % 10000:04d}"


def eod(query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """(status, body) for one request."""
    try:
        symbol = int(query["symbol"])
        first = date.fromisoformat(query["from"])
        last = date.fromisoformat(query["to"])
    except (KeyError, ValueError):
        return 400, {"error": "symbol, from and to (YYYY-MM-DD) are required"}
    days = (last - first).days + 1
    data = [
        {
            "symbol": symbol,
            "date": (day := first + timedelta(n)).isoformat(),
            "close": close(symbol, day),
        }
        for n in range(max(0, days))
    ]
    return 200, {"symbol": symbol, "total": len(data), "data": data}


@route(PATH, "GET")
def bench_eod(request: ReplayRequest, _dataset: ReplayDataset) -> Response:
    """One symbol's window of daily prices."""
    status, body = eod(request.query)
    return Response.json(body, status)
