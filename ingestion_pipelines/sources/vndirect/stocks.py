"""VNDIRECT's public finfo API: every stock listed on HOSE, HNX and UPCoM (`GET /v4/stocks`).

No key is needed. The listing is paged (`size`, 1-based `page`) and says its own
`totalElements`; pages are followed until an empty page or that total, whatever page size the
server really applied. `floor` is the exchange (HOSE / HNX / UPCOM); `listedDate` and
`delistedDate` are ICT calendar dates.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from typing import Any, Literal

from pydantic import Field

from ingestion_pipelines.config.workers import ScheduledSettings
from ingestion_pipelines.sources.base import (
    Expected,
    Record,
    Request,
    Source,
    SourceError,
    exact_json,
)
from ingestion_pipelines.storage.tables import stock

STOCKS_PATH = "/v4/stocks"
LISTING_QUERY = "type:STOCK~floor:HOSE,HNX,UPCOM"
SYMBOL_PATTERN = r"^[A-Z0-9]{3,12}$"


class VndirectSettings(ScheduledSettings):
    """Settings shared by the VNDIRECT workers."""

    base_url: str = "https://finfo-api.vndirect.com.vn"
    page_size: int = Field(1000, ge=1, le=10_000)


class VnStocksSettings(VndirectSettings):
    """Where and how `vn_stocks` crawls."""

    cron: str = "0 8 * * *"  # before the 09:00 open: new listings and delistings of the day


class Stock(Record):
    """One listed stock."""

    symbol: str = Field(validation_alias="code", pattern=SYMBOL_PATTERN)
    exchange: Literal["HOSE", "HNX", "UPCOM"] = Field(validation_alias="floor")
    name: str = Field(validation_alias="companyName", min_length=1)
    name_en: str | None = Field(None, validation_alias="companyNameEng")
    short_name: str | None = Field(None, validation_alias="shortName")
    type: str = Field(min_length=1)
    status: str = Field(min_length=1)
    listed_on: date | None = Field(None, validation_alias="listedDate")
    delisted_on: date | None = Field(None, validation_alias="delistedDate")
    isin: str | None = None
    company_id: str | None = Field(None, validation_alias="companyId")


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


class VnStocks(Source):
    """Every stock listed on HOSE, HNX and UPCoM, from VNDIRECT's public listing."""

    worker_id = "vn_stocks"
    totals = True
    group = "vn_stocks"
    table = stock
    record = Stock
    Settings = VnStocksSettings
    fresh_within = timedelta(hours=26)
    headers = {"Accept": "application/json"}

    def build_requests(self):
        """The first page of the listing."""
        yield listing_request(1, self.settings.page_size)

    def parse(self, response, request):
        """The stocks of one page, and the next page until the listing is complete."""
        yield from paged_rows(response, request, "stocks")
