"""fmarket.vn: every open-ended fund with its latest NAV (`POST /res/products/filter`)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pydantic import AliasPath, Field

from ingestion_pipelines.sources.base import (
    EpochMillis,
    Exact,
    Record,
    Request,
    Source,
    SourceError,
    exact_json,
)
from ingestion_pipelines.storage.tables import fund
from ingestion_pipelines.workers import ScheduledSettings

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
    base_url: str = "https://api.fmarket.vn"
    cron: str = "30 18 * * *"
    page_size: int = Field(100, ge=1, le=1000)


class Fund(Record):
    fund_id: int = Field(validation_alias="id")
    code: str = Field(min_length=1)
    name: str = Field(min_length=1)
    short_name: str | None = Field(None, validation_alias="shortName")
    asset_type: str | None = Field(None, validation_alias=AliasPath("dataFundAssetType", "code"))
    issuer: str | None = Field(None, validation_alias=AliasPath("owner", "name"))
    nav: Exact | None = Field(None, gt=Decimal(0))
    nav_updated_at: EpochMillis | None = Field(
        None, validation_alias=AliasPath("productNavChange", "updateAt")
    )
    first_issue_at: EpochMillis | None = Field(None, validation_alias="firstIssueAt")
    status: str | None = None


def fund_pages(response, request: Request, page_size: int):
    """The rows of one page of the fund list, then the next page's request while rows remain."""
    body = exact_json(response)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise SourceError(
            f"unexpected fund list body (status {body.get('status') if isinstance(body, dict) else '?'})"
        )
    yield from data["rows"]
    page = request.json["page"]
    if page * page_size < int(data.get("total") or 0) and data["rows"]:
        yield fund_list_request(page + 1, page_size, **request.meta)


def fund_list_request(page: int, page_size: int, **meta) -> Request:
    return Request(
        "/res/products/filter",
        method="POST",
        json={**FUND_FILTER, "page": page, "pageSize": page_size},
        meta={"kind": "funds", **meta},
    )


class FmarketFunds(Source):
    """Open-ended funds listed on fmarket.vn, with their latest NAV."""

    worker_id = "fmarket_funds"
    group = "vn_funds"
    table = fund
    record = Fund
    Settings = FmarketSettings
    headers = BROWSER_HEADERS
    fresh_within = timedelta(hours=26)

    def build_requests(self):
        yield fund_list_request(1, self.settings.page_size)

    def parse(self, response, request):
        yield from fund_pages(response, request, self.settings.page_size)
