"""Expected values of `coingecko_markets` for the standard tests."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from ingestion_pipelines.sources.coingecko.replay import PREFIX
from ingestion_pipelines.sources.testing import Standard
from ingestion_pipelines.storage import tables


def _exact(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def check_markets(crawler, _partition) -> None:
    """Every coin served is stored with its exact figures, in one snapshot."""
    stored = {r["coin_id"]: r for r in crawler.rows(tables.crypto_market_snapshot)}
    coins = crawler.server.dataset.coins
    assert len(stored) == len(coins) == 295
    for coin in coins:
        got = stored[coin["id"]]
        assert got["price_usd"] == _exact(coin["current_price"])
        assert got["market_cap_usd"] == _exact(coin["market_cap"])
        assert got["max_supply"] == _exact(coin["max_supply"])
        updated = datetime.fromisoformat(coin["last_updated"].replace("Z", "+00:00"))
        assert got["last_updated"] == updated
        assert got["ath"] == _exact(coin["ath"]) and got["extra"]["image"] == coin["image"]
    assert len({r["captured_at"] for r in stored.values()}) == 1  # one snapshot per run


def break_coin(dataset, _partition) -> None:
    """One coin with a negative price."""
    dataset.coins = [dict(c) for c in dataset.coins]
    dataset.coins[3]["current_price"] = -1


STANDARD = {
    "coingecko_markets": Standard(
        check_markets, break_coin, PREFIX + "/coins/markets", rerun="snapshot"
    ),
}
