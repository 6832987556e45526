"""CoinGecko: ``GET /api/v3/coins/markets`` over a recorded snapshot of about 300 coins.

Paging, ordering and the ``ids`` filter work like the real endpoint; a page past the last one
is ``[]``. An optional per-minute budget answers ``429`` with the free plan's body and a
``Retry-After`` header, as the public API does when it is exceeded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingestion_pipelines.replay.routes import (
    ReplayRequest,
    Response,
    base_path,
    dataset_part,
    rate_limited,
    read_variant,
    route,
    throttle_body,
)

if TYPE_CHECKING:
    from ingestion_pipelines.replay.dataset import ReplayDataset

PREFIX = "/api/v3"

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


# ---------------------------------------------------------------- routes

base_path("coingecko_markets", PREFIX)
throttle_body(PREFIX + "/", RATE_LIMIT_BODY)
rate_limited("coingecko", PREFIX + "/")


@dataset_part("coins")
def recorded_coins(_dataset: ReplayDataset) -> list[dict[str, Any]]:
    """The coins /coins/markets pages through: the recorded snapshot."""
    return read_variant("coingecko_coins_markets.json")


@route(PREFIX + "/coins/markets", "GET")
def coins_markets(request: ReplayRequest, dataset: ReplayDataset) -> Response:
    """One page of the market snapshot."""
    try:
        return Response.json(markets(dataset.coins, request.query))
    except QueryError as exc:
        return Response.json({"error": str(exc)}, 400)
