"""VNDIRECT's public finfo API: daily prices of every listed Vietnamese stock
(`GET /v4/stock_prices`).

One request per stock for the whole window (`q=code:VNM~date:gte:…~date:lte:…`, pages followed
when the server caps `size`), after the listing (`GET /v4/stocks`, declared for `vn_stocks` in
defs/vn_stocks/defs.yaml) says which stocks traded in it. Prices are in the source's unit, thousands of VND (`close` 68.7 is 68,700 VND), kept exact;
`volume` is order-matched shares (`nmVolume`), `value` order-matched VND (`nmValue`),
put-through (negotiated) trades apart. `date` is the ICT trading day.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from pydantic import Field, model_validator

from ingestion_pipelines.config.workers import ScheduledSettings
from ingestion_pipelines.sources.base import (
    Exact,
    Expected,
    Record,
    Request,
    Source,
    SourceError,
    TradingDayPartitions,
    exact_json,
)
from ingestion_pipelines.storage.tables import stock_eod

STOCKS_PATH = "/v4/stocks"
LISTING_QUERY = "type:STOCK~floor:HOSE,HNX,UPCOM"
PRICES_PATH = "/v4/stock_prices"
SYMBOL_PATTERN = r"^[A-Z0-9]{3,12}$"
ZERO = Decimal(0)


class VndirectSettings(ScheduledSettings):
    """Settings of the VNDIRECT workers written in Python."""

    base_url: str = "https://finfo-api.vndirect.com.vn"
    page_size: int = Field(1000, ge=1, le=10_000)


def listing_request(page: int, page_size: int) -> Request:
    """One page of the listing of every stock."""
    return Request(
        STOCKS_PATH,
        params={"q": LISTING_QUERY, "size": page_size, "page": page},
        meta={"kind": "listing", "page": page},
    )


def paged_rows(response, request: Request, family: str) -> Iterator[dict | Request | Expected]:
    """The rows of one page, the source's own total, then the next page while rows remain."""
    body = exact_json(response)
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise SourceError(f"unexpected body (no data list): {str(body)[:200]}")
    rows = body["data"]
    total = int(body.get("totalElements") or 0)
    yield Expected(family, total)
    yield from rows
    # Count what really came: a server may apply a smaller page size than `size` asked for.
    received = request.meta.get("received", 0) + len(rows)
    if rows and received < total:
        page = int(request.params["page"]) + 1
        yield Request(
            request.path,
            params={**request.params, "page": page},
            meta={**request.meta, "page": page, "received": received},
        )


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
    """Where and how `vn_stock_eod` crawls."""

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

    worker_id = "vn_stock_eod"
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
