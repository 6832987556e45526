"""CoinGecko: ``GET /api/v3/coins/markets`` over a recorded snapshot of about 300 coins.

Paging, ordering and the ``ids`` filter work like the real endpoint; a page past the last one
is ``[]``. An optional per-minute budget answers ``429`` with the free plan's body and a
``Retry-After`` header, as the public API does when it is exceeded.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Any

RATE_LIMIT_BODY = {
    "status": {
        "error_code": 429,
        "error_message": "You've exceeded the Rate Limit. Please visit "
        "https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher "
        "rate limits.",
    }
}
MAX_PER_PAGE = 250
_ORDERS = {
    "market_cap_desc": ("market_cap", True),
    "market_cap_asc": ("market_cap", False),
    "volume_desc": ("total_volume", True),
    "volume_asc": ("total_volume", False),
    "id_desc": ("id", True),
    "id_asc": ("id", False),
}


class QueryError(ValueError):
    """A query CoinGecko rejects with HTTP 400 and ``{"error": message}``."""


def markets(coins: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    """The JSON list /coins/markets returns for ``query`` (only ``usd`` is recorded)."""
    currency = query.get("vs_currency")
    if not currency:
        raise QueryError("Missing parameter vs_currency")
    if currency.lower() != "usd":
        raise QueryError("invalid vs_currency")
    order = query.get("order") or "market_cap_desc"
    if order not in _ORDERS:
        raise QueryError("invalid order")
    try:
        per_page = min(max(int(query.get("per_page") or 100), 1), MAX_PER_PAGE)
        page = max(int(query.get("page") or 1), 1)
    except ValueError:
        raise QueryError("invalid page or per_page") from None

    selected = coins
    if query.get("ids"):
        wanted = {part.strip().lower() for part in query["ids"].split(",")}
        selected = [coin for coin in coins if str(coin.get("id")).lower() in wanted]
    if order != "market_cap_desc":  # the recording is already in market_cap_desc order
        key, reverse = _ORDERS[order]
        selected = sorted(selected, key=lambda coin: coin.get(key) or 0, reverse=reverse)
    start = (page - 1) * per_page
    return selected[start : start + per_page]


class RateLimit:
    """A sliding one-minute window of at most ``per_minute`` calls."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def check(self) -> int | None:
        """Count one call; return the Retry-After seconds when it is over budget."""
        now = time.monotonic()
        with self._lock:
            while self._calls and now - self._calls[0] >= 60:
                self._calls.popleft()
            if len(self._calls) >= self.per_minute:
                return max(1, math.ceil(60 - (now - self._calls[0])))
            self._calls.append(now)
            return None
