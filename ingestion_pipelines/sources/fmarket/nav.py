"""fmarket.vn: daily NAV history per fund (`POST /res/product/get-nav-history`).

One request per fund for the whole window, so a backfill of years is as many requests as there
are funds. The API wants both `fromDate` and `toDate` (YYYYMMDD) and answers 400 otherwise;
`navDate` is an ICT calendar date.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from pydantic import Field

from ingestion_pipelines.sources.base import (
    DailyPartitions,
    Exact,
    Expected,
    Record,
    Request,
    Source,
    SourceError,
    exact_json,
)
from ingestion_pipelines.sources.fmarket.funds import (
    BROWSER_HEADERS,
    FmarketSettings,
    fund_list_request,
    fund_pages,
)
from ingestion_pipelines.storage.tables import fund_nav


class FmarketNavSettings(FmarketSettings):
    """Where and how `fmarket_nav` crawls."""

    cron: str = "45 18 * * *"


class FundNav(Record):
    """One fund's NAV on one day."""

    fund_id: int = Field(validation_alias="productId")
    nav_date: date = Field(validation_alias="navDate")
    nav: Exact = Field(gt=Decimal(0))


class FmarketNav(Source):
    """Daily NAV per unit of every fmarket.vn fund (ICT dates)."""

    worker_id = "fmarket_nav"
    group = "vn_funds"
    table = fund_nav
    record = FundNav
    Settings = FmarketNavSettings
    partitions = DailyPartitions(start="2015-01-01")  # ICT days
    date_column = "nav_date"
    headers = BROWSER_HEADERS
    fresh_within = timedelta(hours=26)

    def build_requests(self):
        """The fund list first: one NAV history request per fund follows from it."""
        yield fund_list_request(1, self.settings.page_size)

    def parse(self, response, request):
        """From the fund list, one history request per fund; from a history, its NAV rows."""
        if request.meta["kind"] == "funds":
            # The list's total counts funds, not NAV rows: it drives paging here, and the
            # completeness of the fund list itself is fmarket_funds' `Expected`.
            for item in fund_pages(response, request, self.settings.page_size):
                if isinstance(item, Request):
                    yield item
                elif not isinstance(item, Expected):
                    yield self.history_request(item["id"])
            return
        body = exact_json(response)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise SourceError(f"unexpected NAV history body: {str(body)[:200]}")
        yield from body["data"]

    def history_request(self, fund_id: int) -> Request:
        """The NAV history request of one fund over the run's window."""
        return Request(
            "/res/product/get-nav-history",
            method="POST",
            json={
                "isAllData": 0,
                "productId": fund_id,
                "fromDate": f"{self.window.start:%Y%m%d}",
                "toDate": f"{self.window.last_day:%Y%m%d}",
            },
            meta={"kind": "nav", "fund_id": fund_id},
        )
