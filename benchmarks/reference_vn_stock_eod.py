"""The Python `vn_stock_eod` as it was before the worker became YAML only (issue 18), kept here as
a benchmark-local reference: `crawl_scale.py` section 6 crawls it beside the declaration
(``defs/vn_stock_eod/defs.yaml``) to measure the declaration's rate against it. Not a worker: its
id is `vn_stock_eod_reference`, it is imported only by the benchmark's crawl process
(``crawl_process --source benchmarks.reference_vn_stock_eod:VnStockEod``), never by the package.

One request per stock for the whole window, after the listing (``GET /v4/stocks``) says which
stocks traded in it (the declaration reads them from the `stock` table instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from pydantic import Field, model_validator

from ingestion_pipelines.sources.base import (
    Exact,
    Record,
    Request,
    Source,
    TradingDayPartitions,
)
from ingestion_pipelines.sources.vndirect.finfo import (
    SYMBOL_PATTERN,
    VndirectSettings,
    listing_request,
    paged_rows,
)
from ingestion_pipelines.storage.tables import stock_eod

PRICES_PATH = "/v4/stock_prices"
ZERO = Decimal(0)


def trades_within(row: Mapping[str, Any], start: date, end: date) -> bool:
    """Whether a listing row's stock was listed at some point of [start, end]."""
    try:
        listed = date.fromisoformat(str(row.get("listedDate") or "1900-01-01"))
        delisted = row.get("delistedDate")
        gone = date.fromisoformat(str(delisted)) if delisted else date.max - timedelta(days=1)
    except ValueError:
        return True  # let the price request say what there is
    return listed <= end and gone >= start


class VnStockEodSettings(VndirectSettings):
    """Where and how the reference crawls."""

    cron: str = "30 16 * * 1-5"  # after the 14:45 close and VNDIRECT's end-of-day update


class StockEod(Record):
    """One stock's end-of-day prices."""

    symbol: str = Field(validation_alias="code", pattern=SYMBOL_PATTERN)
    trade_date: date = Field(validation_alias="date")
    exchange: str | None = Field(None, validation_alias="floor")
    open: Exact = Field(gt=ZERO)
    high: Exact = Field(gt=ZERO)
    low: Exact = Field(gt=ZERO)
    close: Exact = Field(gt=ZERO)
    volume: Exact = Field(ge=ZERO, validation_alias="nmVolume")
    value: Exact | None = Field(None, ge=ZERO, validation_alias="nmValue")
    average: Exact | None = Field(None, ge=ZERO)
    reference: Exact | None = Field(None, ge=ZERO, validation_alias="basicPrice")
    ceiling: Exact | None = Field(None, ge=ZERO, validation_alias="ceilingPrice")
    floor: Exact | None = Field(None, ge=ZERO, validation_alias="floorPrice")
    adjusted_close: Exact | None = Field(None, ge=ZERO, validation_alias="adClose")
    put_through_volume: Exact | None = Field(None, ge=ZERO, validation_alias="ptVolume")
    put_through_value: Exact | None = Field(None, ge=ZERO, validation_alias="ptValue")
    change: Exact | None = None
    change_pct: Exact | None = Field(None, validation_alias="pctChange")

    @model_validator(mode="after")
    def _range_holds(self):
        if not self.low <= min(self.open, self.close) <= max(self.open, self.close) <= self.high:
            raise ValueError(
                f"open/close outside [low, high]: {self.open}/{self.close} not in "
                f"[{self.low}, {self.high}]"
            )
        return self


class VnStockEod(Source):
    """Daily OHLCV of every stock on HOSE, HNX and UPCoM (ICT trading days), in thousands of VND."""

    worker_id = "vn_stock_eod_reference"
    totals = True
    group = "vn_stocks"
    table = stock_eod
    record = StockEod
    Settings = VnStockEodSettings
    partitions = TradingDayPartitions(start="2015-01-05")
    date_column = "trade_date"
    fresh_within = timedelta(hours=30)
    headers = {"Accept": "application/json"}

    def build_requests(self):
        """The listing first: one price request per listed stock follows from it."""
        yield listing_request(1, self.settings.page_size)

    def parse(self, response, request):
        """From the listing, price requests; from a price page, its rows (and the next page)."""
        if request.meta["kind"] == "listing":
            for item in paged_rows(response, request, "listing"):
                if isinstance(item, dict):
                    if trades_within(item, self.window.start, self.window.last_day):
                        yield self.prices_request(str(item.get("code")))
                elif isinstance(item, Request):
                    yield item  # the listing's next page; its total is not this table's
            return
        yield from paged_rows(response, request, f"prices:{request.meta['symbol']}")

    def prices_request(self, symbol: str) -> Request:
        """One request for `symbol` over the whole window (a trading day at most per row)."""
        query = (
            f"code:{symbol}~date:gte:{self.window.start.isoformat()}"
            f"~date:lte:{self.window.last_day.isoformat()}"
        )
        size = min(max(self.window.days, 1), 10_000)
        return Request(
            PRICES_PATH,
            params={"sort": "date", "q": query, "size": size, "page": 1},
            meta={"kind": "prices", "symbol": symbol},
        )
