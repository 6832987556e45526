"""VNDIRECT's public finfo API: the full history of every listed stock's financial statements
(`GET /v4/financial_statements`), named through its chart of line items
(`GET /v4/financial_models`), in long form: one row per line item per period.

A run first reads the models listing (every page, asked again by every run: it is small and the
names of its items are joined into the rows). Its statement models (`modelTypeName` BALANCESHEET,
INCOME, CASHFLOW) give the request families: one per stock of the `stock` table (filled by
`vn_stocks`; VNDIRECT's own listing when that table is empty) × report type (QUARTER, ANNUAL) ×
statement model type, paged until the family's `totalElements`. The other model types
(EXPLAINATION, HIGHLIGHT, ...) are not statements: skipped and counted, as are rows of the
report types QUARTER2 (year to date) and ESTIMATION (forecasts), which are not reported
statements. Values are whole VND, exact from the JSON text. The run is resumable: each family's
pages are checkpointed once their rows commit. A restated value updates its row and the value it
replaced goes to `financial_statement_history` (`storage.upsert.History`).
Field map: FIELDS_financial_statements.md; recordings: data/PROVENANCE.md.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from loguru import logger
from pydantic import BeforeValidator, Field

from ingestion_pipelines.sources.base import (
    Exact,
    Record,
    Request,
    Source,
    SourceError,
    exact_json,
)
from ingestion_pipelines.sources.vndirect.finfo import (
    SYMBOL_PATTERN,
    VndirectSettings,
    listing_request,
    paged_rows,
)
from ingestion_pipelines.storage.tables import (
    financial_statement,
    financial_statement_history,
    metadata,
)
from ingestion_pipelines.storage.upsert import History

STATEMENTS_PATH = "/v4/financial_statements"
MODELS_PATH = "/v4/financial_models"
PROVIDER = "vndirect"
STATEMENTS = {"BALANCESHEET": "balance_sheet", "INCOME": "income", "CASHFLOW": "cash_flow"}
PERIODS = {"QUARTER": "quarter", "ANNUAL": "year"}
# Joined from the models listing into each statement row (the names as the listing spells them).
JOINED = (
    "modelTypeName",
    "itemVnName",
    "itemEnName",
    "displayLevel",
    "displayOrder",
    "companyForm",
)


class VnFinancialStatementsSettings(VndirectSettings):
    """Where and how `vn_financial_statements` crawls."""

    base_url: str = "https://api-finfo.vndirect.com.vn"  # finfo-api.vndirect.com.vn is gone
    cron: str = "0 20 * * 6"  # weekly: statements are quarterly, restatements rare
    page_size: int = Field(2000, ge=1, le=10_000)
    report_types: list[Literal["QUARTER", "ANNUAL"]] = ["QUARTER", "ANNUAL"]
    # A keyless public API: 10 req/s is polite; every listed stock (~1,600 × 2 report types × its
    # listing's statement models) then takes about half an hour once a week.
    rate_limit_per_s: float | None = Field(10.0, gt=0, le=1000, allow_inf_nan=False)


def _integral_code(value: Any) -> Any:
    """`itemCode` 14310.0 as "14310": a code with a fraction is refused."""
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        number = Decimal(value)
        if number != number.to_integral_value():
            raise ValueError(f"item code {value} is not integral")
        return str(int(number))
    return value


def _statement_name(raw: Any) -> Any:
    """BALANCESHEET / INCOME / CASHFLOW (the model's `modelTypeName`) as the statement."""
    return STATEMENTS.get(raw, raw) if isinstance(raw, str) else raw


def _period_name(raw: Any) -> Any:
    """QUARTER / ANNUAL as quarter / year."""
    return PERIODS.get(raw, raw) if isinstance(raw, str) else raw


class StatementItem(Record):
    """One line item of one statement of one period."""

    symbol: str = Field(validation_alias="code", pattern=SYMBOL_PATTERN)
    statement: Annotated[
        Literal["income", "balance_sheet", "cash_flow"], BeforeValidator(_statement_name)
    ] = Field(validation_alias="modelTypeName")
    period_type: Annotated[Literal["quarter", "year"], BeforeValidator(_period_name)] = Field(
        validation_alias="reportType"
    )
    fiscal_date: date = Field(validation_alias="fiscalDate")
    item_code: Annotated[str, BeforeValidator(_integral_code)] = Field(
        validation_alias="itemCode", pattern=r"^\d{1,32}$"
    )
    item_name_vi: str | None = Field(None, validation_alias="itemVnName")
    item_name_en: str | None = Field(None, validation_alias="itemEnName")
    value: Exact | None = Field(None, validation_alias="numericValue")
    modified_date: str | None = Field(None, validation_alias="modifiedDate", max_length=32)
    provider: str = PROVIDER

    def row(self) -> dict[str, Any]:
        """The row, with the fiscal year and quarter of the period's end (0: the year)."""
        row = super().row()
        row["fiscal_year"] = self.fiscal_date.year
        quarterly = self.period_type == "quarter"
        row["fiscal_quarter"] = (self.fiscal_date.month + 2) // 3 if quarterly else 0
        return row


def _number_key(value: Any) -> str:
    """A model type or item code as the text of its integer (14310.0 -> "14310")."""
    try:
        return _integral_code(Decimal(str(value)))
    except (ValueError, ArithmeticError):
        return str(value)


class VnFinancialStatements(Source):
    """Income statements, balance sheets and cash flows of every listed stock, full history."""

    worker_id = "vn_financial_statements"
    group = "vn_fundamentals"
    description = (
        "Financial statements (income, balance sheet, cash flow) of every listed stock, "
        "quarterly and annual, full history, in long form (VND)."
    )
    totals = True
    resumable = True
    table = financial_statement
    record = StatementItem
    Settings = VnFinancialStatementsSettings
    fresh_within = timedelta(days=8)
    headers = {"Accept": "application/json"}

    def __init__(self, settings, window=None):
        super().__init__(settings, window)
        self.items: dict[tuple[str, str], dict[str, Any]] = {}  # (model type, item code)
        self.statement_models: dict[str, str] = {}  # model type -> its modelTypeName
        self.skipped: Counter[str] = Counter()

    def history(self, run_id):
        """Every replaced value goes to `financial_statement_history`."""
        return History(
            financial_statement_history,
            {"replaced_at": datetime.now(UTC), "run_id": run_id},
        )

    def build_requests(self):
        """The models listing first: the statement requests follow from its last page."""
        yield self.models_request(1)

    def models_request(self, page: int, received: int = 0) -> Request:
        """One page of the chart of line items (never checkpointed: every run reads it)."""
        return Request(
            MODELS_PATH,
            params={"size": self.settings.page_size, "page": page},
            meta={"kind": "models", "page": page, "received": received, "checkpoint": False},
        )

    def statements_request(self, symbol: str, report_type: str, model_type: str) -> Request:
        """The first page of one family: one stock's statements of one report and model type."""
        return Request(
            STATEMENTS_PATH,
            params={
                "q": f"code:{symbol}~reportType:{report_type}~modelType:{model_type}",
                "sort": "fiscalDate:desc",
                "size": self.settings.page_size,
                "page": 1,
            },
            meta={"kind": "statements", "family": f"{symbol}:{report_type}:{model_type}"},
        )

    def parse(self, response, request):
        """Models: keep the chart, then ask for every family; listing: its stocks' families;
        statements: the rows of one page joined with their item's model, then the next page."""
        kind = request.meta["kind"]
        if kind == "models":
            yield from self.parse_models(response, request)
        elif kind == "listing":
            for item in paged_rows(response, request, "listing"):
                if isinstance(item, dict):
                    yield from self.family_requests([str(item.get("code"))])
                elif isinstance(item, Request):
                    yield item
        else:
            yield from self.parse_statements(response, request)

    def parse_models(self, response, request):
        """Keep one page of the chart; after the last, the requests of every family."""
        body = exact_json(response)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise SourceError(f"unexpected body (no data list): {str(body)[:200]}")
        rows = body["data"]
        for row in rows:
            model_type = _number_key(row.get("modelType"))
            name = row.get("modelTypeName")
            if name in STATEMENTS:
                self.statement_models[model_type] = name
                self.items[(model_type, _number_key(row.get("itemCode")))] = row
            else:
                self.skipped[f"model {model_type} {name} (not a statement)"] += 1
        received = request.meta["received"] + len(rows)
        if rows and received < int(body.get("totalElements") or 0):
            yield self.models_request(request.meta["page"] + 1, received)
            return
        if not self.statement_models:
            raise SourceError(f"{MODELS_PATH} lists no statement model ({', '.join(STATEMENTS)})")
        logger.bind(worker_id=self.worker_id).info(
            "statement models {}; skipped {}", sorted(self.statement_models), dict(self.skipped)
        )
        symbols = self.listed_symbols()
        if symbols is None:
            yield listing_request(1, 1000)
        else:
            yield from self.family_requests(symbols)

    def listed_symbols(self) -> list[str] | None:
        """The symbols of the `stock` table (None when it is empty: the listing is asked)."""
        from sqlalchemy import select

        from ingestion_pipelines.core.settings import get_settings
        from ingestion_pipelines.storage.engines import get_engine

        url = self.settings.database_url or get_settings().database_url
        with get_engine(url).connect() as conn:
            stock = metadata.tables["stock"]  # declared in defs/vn_stocks/defs.yaml
            symbols = list(conn.execute(select(stock.c.symbol).order_by(stock.c.symbol)).scalars())
        return symbols or None

    def family_requests(self, symbols: list[str]):
        """One first request per stock × report type × statement model type."""
        for symbol in symbols:
            for report_type in self.settings.report_types:
                for model_type in sorted(self.statement_models, key=lambda t: (len(t), t)):
                    yield self.statements_request(symbol, report_type, model_type)

    def parse_statements(self, response, request):
        """One page's rows with their model's names, the family's total, the next page."""
        skipped: Counter[str] = Counter()
        for item in paged_rows(response, request, request.meta["family"]):
            if not isinstance(item, dict):
                yield item  # the family's total (Expected) or its next page
            elif item.get("reportType") not in PERIODS:
                skipped[f"reportType {item.get('reportType')}"] += 1
            else:
                yield self.joined(item)
        if skipped:
            self.skipped.update(skipped)
            logger.bind(worker_id=self.worker_id).info(
                "{}: rows not of a reported statement skipped: {}",
                request.meta["family"],
                dict(skipped),
            )

    def joined(self, row: dict[str, Any]) -> dict[str, Any]:
        """A statement row with its model's names and kind (`modelTypeName` as a statement)."""
        model_type = _number_key(row.get("modelType"))
        model = self.items.get((model_type, _number_key(row.get("itemCode")))) or {}
        joined = {**row, **{k: model[k] for k in JOINED if k in model}}
        joined["modelTypeName"] = self.statement_models.get(model_type)
        return joined
