"""fmarket.vn: every open-ended fund with its latest NAV (`POST /res/products/filter`)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pydantic import AliasPath, Field

from ingestion_pipelines.config.workers import ScheduledSettings
from ingestion_pipelines.sources.base import (
    EpochMillis,
    Exact,
    Expected,
    Record,
    Request,
    Source,
    SourceError,
    exact_json,
)
from ingestion_pipelines.storage.tables import fund

# The body fmarket.vn's own site sends; the API filters and pages on it.
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
BROWSER_HEADERS = {
    "Origin": "https://fmarket.vn",
    "Referer": "https://fmarket.vn/",
    "Accept": "application/json, text/plain, */*",
}


class FmarketSettings(ScheduledSettings):
    """Where and how `fmarket_funds` crawls."""

    base_url: str = "https://api.fmarket.vn"
    cron: str = "30 18 * * *"
    page_size: int = Field(100, ge=1, le=1000)


def _change(name: str) -> AliasPath:
    """A return figure (percent) of `productNavChange`."""
    return AliasPath("productNavChange", name)


class Fund(Record):
    """One fund of the fund list."""

    fund_id: int = Field(validation_alias="id")
    code: str = Field(min_length=1)
    name: str = Field(min_length=1)
    short_name: str | None = Field(None, validation_alias="shortName")
    asset_type: str | None = Field(None, validation_alias=AliasPath("dataFundAssetType", "code"))
    issuer: str | None = Field(None, validation_alias=AliasPath("owner", "name"))
    nav: Exact | None = Field(None, gt=Decimal(0))
    # The time the NAV is for (its ICT day's midnight), not when fmarket recomputed the returns.
    nav_updated_at: EpochMillis | None = Field(
        None, validation_alias=AliasPath("extra", "lastNAVDate")
    )
    first_issue_at: EpochMillis | None = Field(None, validation_alias="firstIssueAt")
    status: str | None = None
    # When fmarket last recomputed the figures below (the day after the NAV, usually).
    figures_updated_at: EpochMillis | None = Field(
        None, validation_alias=AliasPath("productNavChange", "updateAt")
    )
    return_1m: Exact | None = Field(None, validation_alias=_change("navTo1Months"))
    return_3m: Exact | None = Field(None, validation_alias=_change("navTo3Months"))
    return_6m: Exact | None = Field(None, validation_alias=_change("navTo6Months"))
    return_12m: Exact | None = Field(None, validation_alias=_change("navTo12Months"))
    return_36m: Exact | None = Field(None, validation_alias=_change("navTo36Months"))
    return_since_inception: Exact | None = Field(None, validation_alias=_change("navToBeginning"))
    return_to_last_year: Exact | None = Field(None, validation_alias=_change("navToLastYear"))
    management_fee: Exact | None = Field(None, validation_alias="managementFee")
    risk_level: str | None = Field(None, validation_alias=AliasPath("riskLevel", "name"))
    fund_type: str | None = Field(None, validation_alias=AliasPath("fundType", "name"))
    trading_session_at: EpochMillis | None = Field(
        None, validation_alias=AliasPath("productTradingSession", "tradingTime")
    )


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


class FmarketFunds(Source):
    """Open-ended funds listed on fmarket.vn, with their latest NAV."""

    worker_id = "fmarket_funds"
    totals = True
    group = "vn_funds"
    table = fund
    record = Fund
    Settings = FmarketSettings
    headers = BROWSER_HEADERS
    fresh_within = timedelta(hours=26)

    def build_requests(self):
        """The first page of the fund list; `parse` follows with the next ones."""
        yield fund_list_request(1, self.settings.page_size)

    def parse(self, response, request):
        """The funds of one page, and the next page until the list is complete."""
        yield from fund_pages(response, request, self.settings.page_size)
