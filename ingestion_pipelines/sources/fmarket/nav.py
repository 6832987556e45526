"""fmarket.vn: daily NAV history per fund (`POST /res/product/get-nav-history`), the hook of its
declaration (``defs/fmarket_nav/defs.yaml``: worker id, settings, table, partitions, deadline).

One request per fund for the whole window, so a backfill of years is as many requests as there
are funds. The API wants both `fromDate` and `toDate` (YYYYMMDD) and answers 400 otherwise;
`navDate` is an ICT calendar date.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import Field

from ingestion_pipelines.sources.base import (
    Exact,
    Expected,
    Record,
    Request,
    SourceError,
    exact_json,
)
from ingestion_pipelines.sources.declared import DeclaredSource

# The fund list's body as fmarket's own site sends it (`defs/fmarket_funds/defs.yaml` declares the
# same request): the fund ids whose NAV history is read come from it.
FUND_FILTER = {
    "types": ["NEW_FUND", "TRADING_FUND"],
    "issuerIds": [],
    "sortOrder": "DESC",
    "sortField": "navTo6Months",
    "isIpo": False,
    "fundAssetTypes": [],
    "bondRemainPeriods": [],
    "searchField": "",
    "isBuyByReward": False,
    "thirdAppIds": [],
}


def fund_pages(response, request: Request, page_size: int):
    """The rows of one page of the fund list, the list's own total (as `Expected`, with the first
    page), then the next page's request until the source says there is no more: an empty page, or
    the rows received reaching its `total`, whatever page size the server really applied."""
    body = exact_json(response)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise SourceError(
            f"unexpected fund list body (status {body.get('status') if isinstance(body, dict) else '?'})"
        )
    rows = data["rows"]
    total = int(data.get("total") or 0)
    page = request.json["page"]
    received = request.meta.get("received", 0) + len(rows)
    if page == 1:
        yield Expected("funds", total)
    yield from rows
    if rows and received < total:
        if page >= total:  # every page so far had rows, yet more pages than rows: a paging loop
            raise SourceError(f"page {page} still short of the total {total}: paging never ends")
        yield fund_list_request(page + 1, page_size, **{**request.meta, "received": received})


def fund_list_request(page: int, page_size: int, **meta) -> Request:
    """Page `page` of the fund list; `meta["received"]` counts the rows of the pages before it."""
    return Request(
        "/res/products/filter",
        method="POST",
        json={**FUND_FILTER, "page": page, "pageSize": page_size},
        meta={"kind": "funds", "received": 0, **meta},
    )


class FundNav(Record):
    """One fund's NAV on one day."""

    fund_id: int = Field(validation_alias="productId")
    nav_date: date = Field(validation_alias="navDate")
    nav: Exact = Field(gt=Decimal(0))


class NavHistory(DeclaredSource):
    """The code of a fund NAV history source declared in YAML (``hook: ingestion_pipelines.
    sources.fmarket.nav:NavHistory`` in its defs.yaml, whose settings give `page_size`): the fund
    list first, then one NAV history request per fund over the run's window."""

    record = FundNav

    def build_requests(self):
        """The fund list first: one NAV history request per fund follows from it."""
        yield fund_list_request(1, self.settings.page_size)

    def parse(self, response, request):
        """From the fund list, one history request per fund; from a history, its NAV rows."""
        if request.meta["kind"] == "funds":
            # The list's total counts funds, not NAV rows: it drives paging here, and the
            # completeness of the fund list itself is the fund list source's own total.
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
