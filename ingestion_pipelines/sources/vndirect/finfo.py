"""What VNDIRECT's code shares (the `vn_financial_statements` hook; `VndirectSettings` for the
benchmark's reference Python prices worker): settings,
the listing request (``GET /v4/stocks``, declared for `vn_stocks` in defs/vn_stocks/defs.yaml)
and the paging of finfo's ``{"data": [...], "totalElements"}`` envelope, followed to the source's
own total by what the server really returned."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from ingestion_pipelines.config.workers import ScheduledSettings
from ingestion_pipelines.sources.base import Expected, Request, SourceError, exact_json

STOCKS_PATH = "/v4/stocks"
LISTING_QUERY = "type:STOCK~floor:HOSE,HNX,UPCOM"
SYMBOL_PATTERN = r"^[A-Z0-9]{3,12}$"


class VndirectSettings(ScheduledSettings):
    """Settings of a VNDIRECT worker written in Python (benchmarks/reference_vn_stock_eod.py)."""

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
