"""Vietcap IQ's financial statements, `vn_financial_statements`' second provider
(``providers.vietcap`` in defs/vn_financial_statements/defs.yaml):
``GET https://iq.vietcap.com.vn/api/iq-insight-service/v1/company/<symbol>/financial-statement
?section=BALANCE_SHEET|INCOME_STATEMENT|CASH_FLOW`` answers
``{"data": {"years": [...], "quarters": [...]}}``, one wide object per period (`yearReport`,
`lengthReport` 1-4 for a quarter, 5 for the year, `publicDate`, ...) whose line items are keys
(`isa16`, `bsa53`, `cfa18`, ...; the prefix names the statement and the company form).

Unpivoted here into the long rows VNDIRECT's give: one row per (period, item) the object gives a
number for; an item sent null has no row (the wide objects carry every code of every company
form). Values are full VND as sent (the unit VNDIRECT's rows have), exact from the JSON text.
What is inferred, not said: `fiscal_date` (the calendar end of the quarter or year: Vietcap sends
no period end; `fiscal_date_inferred` true in `extra`). Item names are not sent with the values:
a stock's sections are asked after its ``/financial-statement/metrics`` (``{"data":
{"BALANCE_SHEET": [{"field": "bsa53", "titleVi", "titleEn", "level", "parent", "name"}, ...],
...}}``, never checkpointed: every run reads it), whose titles are joined on the lower-cased
field (an item it does not name keeps NULL names). Every other key of the
period object (`organCode`, `publicDate`, ...) goes to `extra`; periods of other lengths (half
years, nine months) are skipped and counted. Recording: data/PROVENANCE.md of its declaration.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import date
from typing import Any, Literal

from pydantic import Field

from ingestion_pipelines.sources.base import Exact, Record, Request, SourceError, exact_json

PROVIDER = "vietcap"
SECTIONS = {
    "BALANCE_SHEET": "balance_sheet",
    "INCOME_STATEMENT": "income",
    "CASH_FLOW": "cash_flow",
}
# A line item's key: two letters of its statement (bs, is, cf, no), one of its company form, a
# number (`bsI141` as sent once: compared lower-cased)
ITEM_KEY = re.compile(r"^(bs|is|cf|no)[a-z]\d{1,5}$", re.IGNORECASE)
QUARTER_ENDS = {1: (3, 31), 2: (6, 30), 3: (9, 30), 4: (12, 31)}
YEAR = 5  # lengthReport of a full year


class VietcapItem(Record):
    """One line item of one Vietcap statement of one period (already in long form)."""

    symbol: str = Field(pattern=r"^[A-Z0-9]{3,12}$")
    statement: Literal["income", "balance_sheet", "cash_flow"]
    period_type: Literal["quarter", "year"]
    fiscal_year: int = Field(validation_alias="yearReport", ge=1990, le=2100)
    fiscal_quarter: int = Field(ge=0, le=4)
    fiscal_date: date
    item_code: str = Field(pattern=r"^[a-z]{3}\d{1,5}$")
    item_name_vi: str | None = None
    item_name_en: str | None = None
    value: Exact | None = None
    modified_date: str | None = Field(None, validation_alias="updateDate", max_length=32)
    provider: str = PROVIDER


def vietcap_request(base_url: str, symbol: str, section: str) -> Request:
    """One stock's statements of one section, every period Vietcap holds."""
    path = f"{base_url.rstrip('/')}/api/iq-insight-service/v1/company/{symbol}/financial-statement"
    return Request(
        path,
        params={"section": section},
        meta={
            "kind": "vietcap",
            "provider": PROVIDER,
            "symbol": symbol,
            "section": section,
            "family": f"{symbol}:{section}",
        },
    )


def metrics_request(base_url: str, symbol: str) -> Request:
    """One stock's chart of items (their names), asked before its sections."""
    path = f"{base_url.rstrip('/')}/api/iq-insight-service/v1/company/{symbol}"
    return Request(
        f"{path}/financial-statement/metrics",
        meta={
            "kind": "vietcap_metrics",
            "provider": PROVIDER,
            "symbol": symbol,
            "family": f"{symbol}:metrics",
            "checkpoint": False,
        },
    )


def metric_names(response) -> dict[str, tuple[str | None, str | None]]:
    """Item code (lower-cased `field`) -> (titleVi, titleEn) of a metrics answer."""
    body = exact_json(response)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise SourceError(f"unexpected Vietcap metrics body (no data object): {str(body)[:200]}")
    names = {}
    for entries in data.values():
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("field"), str):
                names[entry["field"].lower()] = (entry.get("titleVi"), entry.get("titleEn"))
    return names


def period_of(list_name: str, period: dict[str, Any]) -> tuple[str, int] | None:
    """(period type, fiscal quarter: 0 for the year) of one period object; None: not a quarter
    or a year (a half year, nine months)."""
    length = period.get("lengthReport")
    if list_name == "years" and length == YEAR:
        return "year", 0
    if list_name == "quarters" and length in QUARTER_ENDS:
        return "quarter", int(length)
    return None


def fiscal_end(year: Any, quarter: int) -> date | None:
    """The calendar end of the period (inferred: Vietcap sends none)."""
    if not isinstance(year, int) or isinstance(year, bool) or not 1990 <= year <= 2100:
        return None
    month, day = QUARTER_ENDS[quarter or 4]
    return date(year, month, day)


def vietcap_rows(
    response, request: Request, skipped: Counter[str], names: dict | None = None
) -> Iterator[dict[str, Any]]:
    """The long rows of one section's answer, named from `names` (see the module's docstring)."""
    body = exact_json(response)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise SourceError(f"unexpected Vietcap body (no data object): {str(body)[:200]}")
    symbol, section = request.meta["symbol"], request.meta["section"]
    for list_name in ("years", "quarters"):
        periods = data.get(list_name) or []
        if not isinstance(periods, list):
            raise SourceError(f"Vietcap data.{list_name} is not a list: {str(periods)[:200]}")
        for period in periods:
            kind = period_of(list_name, period) if isinstance(period, dict) else None
            if kind is None:
                skipped[f"{list_name} lengthReport {period.get('lengthReport')}"] += 1
                continue
            yield from _items(symbol, SECTIONS[section], kind, period, names or {})


def _items(
    symbol: str, statement: str, kind: tuple[str, int], period: dict, names: dict
) -> Iterator[dict]:
    items = {k: v for k, v in period.items() if ITEM_KEY.match(k)}
    shared = {k: v for k, v in period.items() if k not in items}
    shared.update(
        symbol=symbol,
        statement=statement,
        period_type=kind[0],
        fiscal_quarter=kind[1],
        fiscal_date=fiscal_end(period.get("yearReport"), kind[1]),
        fiscal_date_inferred=True,
    )
    for key, value in items.items():
        if value is not None:
            code = key.lower()
            vi, en = names.get(code, (None, None))
            yield {
                **shared,
                "item_code": code,
                "value": value,
                "item_name_vi": vi,
                "item_name_en": en,
            }
