"""CoinGecko market snapshots (`GET /coins/markets`), paged until an empty page.

Each run is one snapshot: every coin's `captured_at` is the crawl's capture time, and
CoinGecko's own `last_updated` (null for stale coins) is a column of its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import Field

from ingestion_pipelines.sources.base import (
    Exact,
    NonNegativeExact,
    Record,
    Request,
    Source,
    UtcTime,
    exact_json,
)
from ingestion_pipelines.storage.tables import crypto_market_snapshot
from ingestion_pipelines.workers import ScheduledSettings, secret


class CoingeckoSettings(ScheduledSettings):
    """Where and how `coingecko_markets` crawls."""

    base_url: str = "https://api.coingecko.com/api/v3"
    cron: str = "*/5 * * * *"
    vs_currency: str = "usd"
    per_page: int = Field(250, ge=1, le=250)
    max_pages: int = Field(4, ge=1, description="stop after this many pages even if not empty")
    api_key: str | None = secret(description="sent as x-cg-demo-api-key")


class MarketSnapshot(Record):
    """One coin of the market snapshot."""

    coin_id: str = Field(validation_alias="id", min_length=1)
    # The crawl's capture time, one per run (a run's snapshot is one key): CoinGecko's own
    # `last_updated` differs per coin and is null for stale coins.
    captured_at: UtcTime
    symbol: str
    name: str | None = None
    price_usd: NonNegativeExact | None = Field(None, validation_alias="current_price")
    market_cap_usd: NonNegativeExact | None = Field(None, validation_alias="market_cap")
    market_cap_rank: int | None = None
    volume_24h_usd: NonNegativeExact | None = Field(None, validation_alias="total_volume")
    price_change_pct_24h: Exact | None = Field(None, validation_alias="price_change_percentage_24h")
    circulating_supply: NonNegativeExact | None = None
    total_supply: NonNegativeExact | None = None
    max_supply: NonNegativeExact | None = None
    last_updated: UtcTime | None = None
    high_24h: Exact | None = None
    low_24h: Exact | None = None
    price_change_24h: Exact | None = None
    market_cap_change_24h: Exact | None = None
    market_cap_change_pct_24h: Exact | None = Field(
        None, validation_alias="market_cap_change_percentage_24h"
    )
    fully_diluted_valuation: Exact | None = None
    ath: Exact | None = None
    ath_change_pct: Exact | None = Field(None, validation_alias="ath_change_percentage")
    ath_date: UtcTime | None = None
    atl: Exact | None = None
    atl_change_pct: Exact | None = Field(None, validation_alias="atl_change_percentage")
    atl_date: UtcTime | None = None


class CoingeckoMarkets(Source):
    """Price, market cap and volume of the top coins, every five minutes."""

    worker_id = "coingecko_markets"
    group = "crypto"
    table = crypto_market_snapshot
    record = MarketSnapshot
    Settings = CoingeckoSettings
    fresh_within = timedelta(minutes=20)

    def page(self, number: int) -> Request:
        """The request of one page of the snapshot."""
        settings = self.settings
        return Request(
            "/coins/markets",
            params={
                "vs_currency": settings.vs_currency,
                "order": "market_cap_desc",
                "per_page": settings.per_page,
                "page": number,
            },
            headers={"x-cg-demo-api-key": settings.api_key} if settings.api_key else None,
            meta={"page": number},
        )

    def build_requests(self):
        """The first page, stamping the run's capture time; `parse` follows with the next ones."""
        self.captured_at = datetime.now(UTC)
        yield self.page(1)

    def parse(self, response, request):
        """The coins of one page, and the next page while pages hold coins (up to `max_pages`)."""
        coins = exact_json(response)
        if not isinstance(coins, list):
            raise ValueError(f"expected a JSON list of coins, got {type(coins).__name__}")
        for coin in coins:
            yield {**coin, "captured_at": self.captured_at} if isinstance(coin, dict) else coin
        if coins and request.meta["page"] < self.settings.max_pages:
            yield self.page(request.meta["page"] + 1)
