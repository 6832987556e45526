"""The hook of `vn_financial_statements` (its declaration: defs/vn_financial_statements/defs.yaml:
worker id, schedule, settings, table, history table, totals, checkpoints, providers): VNDIRECT's
public finfo API, the full history of every listed stock's financial statements
(`GET /v4/financial_statements`), named through its chart of line items
(`GET /v4/financial_models`), in long form: one row per line item per period; Vietcap IQ as the
second provider (`statements_vietcap.py`), failing over per stock (`sources/providers.py`).

A run first reads the models listing (every page, asked again by every run: it is small and the
names of its items are joined into the rows). Its statement models (`modelTypeName` BALANCESHEET,
INCOME, CASHFLOW) give the request families: one per stock of the `stock` table (filled by
`vn_stocks`; VNDIRECT's own listing when that table is empty) × report type (QUARTER, ANNUAL) ×
statement model type, paged until the family's `totalElements`. The other model types
(EXPLAINATION, HIGHLIGHT, ...) are not statements: skipped and counted, as are rows of the
report types QUARTER2 (year to date) and ESTIMATION (forecasts), which are not reported
statements. Values are whole VND, exact from the JSON text. The run is resumable: each family's
pages are checkpointed once their rows commit. A restated value updates its row and the value it
replaced goes to `financial_statement_history` (the declaration's `history`).

Failover (the `providers` setting, first = preferred): a stock is a partition. When VNDIRECT's
models listing fails (a 403 from its WAF: one request for the whole run) every stock is asked of
Vietcap; when one stock's family fails, that stock is asked of the next provider (its other
families already queued may fail too: they cost no second failover). A provider blocked in an
earlier run (health kept in `worker_state`) is not asked until its `retry_after`. The provider
of every row is its `provider` column; the run's metadata names the provider per stock count,
every failover and the health.
Field map: FIELDS_financial_statements.md; recordings: data/PROVENANCE.md.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from loguru import logger
from pydantic import BeforeValidator, Field

from ingestion_pipelines.http_client.errors import RunDeadlineExceeded
from ingestion_pipelines.sources.base import Exact, Record, Request, SourceError, exact_json
from ingestion_pipelines.sources.declared import DeclaredSource
from ingestion_pipelines.sources.providers import Failover, HealthBook, provider_order
from ingestion_pipelines.sources.vndirect import statements_vietcap as vietcap
from ingestion_pipelines.sources.vndirect.finfo import SYMBOL_PATTERN, listing_request, paged_rows
from ingestion_pipelines.sources.vndirect.statements_vietcap import VietcapItem
from ingestion_pipelines.storage.tables import metadata

STATEMENTS_PATH = "/v4/financial_statements"
MODELS_PATH = "/v4/financial_models"
PROVIDER = "vndirect"
STATEMENTS = {"BALANCESHEET": "balance_sheet", "INCOME": "income", "CASHFLOW": "cash_flow"}
PERIODS = {"QUARTER": "quarter", "ANNUAL": "year"}
# Joined from the models listing into each statement row (the names as the listing spells them).
PROVIDERS = (PROVIDER, "vietcap")  # what the hook can ask (the declaration's providers)
LISTING = "models and listing"  # the failover partition of VNDIRECT's run-wide requests
REPORT_TYPES = ("QUARTER", "ANNUAL")
JOINED = (
    "modelTypeName",
    "itemVnName",
    "itemEnName",
    "displayLevel",
    "displayOrder",
    "companyForm",
)


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


class StatementsFailover(Failover):
    """`Failover` that can also take a provider out of one partition before it is asked (VNDIRECT
    for every stock once its models listing failed: without the chart it cannot serve one)."""

    def asking(self, partition: str, provider: str) -> None:
        """Count `provider` as tried for `partition` (asked without `choose`)."""
        state = self._state(partition)
        if provider not in state.tried:
            state.tried.append(provider)

    def skip(self, partition: str, provider: str, reason: str) -> None:
        """Count `provider` as tried and failed for `partition`, without a request."""
        if provider not in self._state(partition).tried:
            self.asking(partition, provider)
            self._state(partition).failures[provider] = reason


class FinancialStatements(DeclaredSource):
    """The code of `vn_financial_statements` (``hook:`` of its defs.yaml, whose settings give
    `page_size`, `report_types`, `providers`, `vietcap_base_url`, `vietcap_sections`): the models
    listing first, then every stock's families, each stock from its first usable provider."""

    record = StatementItem

    def __init__(self, settings, window=None):
        super().__init__(settings, window)
        unknown = set(settings.report_types) - set(REPORT_TYPES)
        if unknown:
            raise ValueError(f"report_types: unknown {sorted(unknown)} (one of {REPORT_TYPES})")
        unknown = set(settings.vietcap_sections) - set(vietcap.SECTIONS)
        if unknown:
            raise ValueError(
                f"vietcap_sections: unknown {sorted(unknown)} (one of {list(vietcap.SECTIONS)})"
            )
        self.items: dict[tuple[str, str], dict[str, Any]] = {}  # (model type, item code)
        self.statement_models: dict[str, str] = {}  # model type -> its modelTypeName
        self.skipped: Counter[str] = Counter()
        order = provider_order(getattr(settings, "providers", None), PROVIDERS)
        self.failover = StatementsFailover(self.worker_id, order, HealthBook(order))
        self.asked: dict[str, str] = {}  # symbol -> the provider its requests went to last
        self.vietcap_names: dict[str, tuple[str | None, str | None]] = {}  # item -> (vi, en)
        self.vndirect_unusable: str | None = None  # why VNDIRECT serves no stock this run

    # -- requests ----------------------------------------------------------------------------
    def build_requests(self):
        """VNDIRECT's models listing first (the statement requests follow from its last page);
        without VNDIRECT (not configured, or blocked by an earlier run while another provider is
        usable), every stock straight from the next provider."""
        book, now = self.failover.book, datetime.now(UTC)
        others = [p for p in self.failover.order if p != PROVIDER]
        if PROVIDER in self.failover.order and (
            book.usable(PROVIDER, now) or not any(book.usable(p, now) for p in others)
        ):
            self.failover.asking(LISTING, PROVIDER)
            yield self.models_request(1)
            return
        self.vndirect_unusable = (
            f"unusable: {book.why_unusable(PROVIDER)}"
            if PROVIDER in self.failover.order
            else "not in the providers setting"
        )
        yield from self.start_symbols(self.required_symbols())

    def models_request(self, page: int, received: int = 0) -> Request:
        """One page of the chart of line items (never checkpointed: every run reads it)."""
        return Request(
            MODELS_PATH,
            params={"size": self.settings.page_size, "page": page},
            meta={
                "kind": "models",
                "page": page,
                "received": received,
                "checkpoint": False,
                "provider": PROVIDER,
            },
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
            meta={
                "kind": "statements",
                "family": f"{symbol}:{report_type}:{model_type}",
                "symbol": symbol,
                "provider": PROVIDER,
            },
        )

    def family_requests(self, symbols: list[str]):
        """VNDIRECT: one first request per stock × report type × statement model type."""
        for symbol in symbols:
            for report_type in self.settings.report_types:
                for model_type in sorted(self.statement_models, key=lambda t: (len(t), t)):
                    yield self.statements_request(symbol, report_type, model_type)

    def symbol_requests(self, symbol: str, provider: str) -> list[Request]:
        """Every request of one stock to `provider`."""
        self.asked[symbol] = provider
        if provider == PROVIDER:
            return list(self.family_requests([symbol]))
        return [vietcap.metrics_request(self.settings.vietcap_base_url, symbol)]

    def section_requests(self, symbol: str) -> list[Request]:
        """Vietcap: one request per section of one stock (after its metrics)."""
        base_url = self.settings.vietcap_base_url
        sections = self.settings.vietcap_sections
        return [vietcap.vietcap_request(base_url, symbol, s) for s in sections]

    def start_symbols(self, symbols: list[str]):
        """Each stock's requests, from its first usable provider."""
        for symbol in symbols:
            if self.vndirect_unusable is not None:
                self.failover.skip(symbol, PROVIDER, self.vndirect_unusable)
            yield from self.symbol_requests(symbol, self.failover.choose(symbol))

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

    def required_symbols(self) -> list[str]:
        """The `stock` table's symbols; without VNDIRECT's listing an empty table fails the run."""
        symbols = self.listed_symbols()
        if symbols is None:
            raise SourceError(
                f"{self.worker_id}: the `stock` table is empty and VNDIRECT's listing cannot be "
                f"asked ({self.vndirect_unusable}): run vn_stocks first"
            )
        return symbols

    # -- failover ----------------------------------------------------------------------------
    def record_of(self, request: Request):
        """The record model of the provider that answered `request`."""
        return VietcapItem if request.meta.get("provider") == "vietcap" else StatementItem

    def on_request_failed(self, request: Request, error: BaseException) -> list[Request]:
        """The requests replacing a failed one: every stock from the next provider when VNDIRECT's
        models or listing failed, one stock's when one of its requests failed (none when that
        stock already moved on); `ProvidersExhausted` when no provider is left."""
        if isinstance(error, RunDeadlineExceeded):  # the run's time is up, not the provider's
            raise error
        provider = request.meta.get("provider", PROVIDER)
        if request.meta.get("kind") in ("models", "listing"):
            self.failover.on_failure(LISTING, PROVIDER, error)  # raises when none is left
            self.vndirect_unusable = f"{type(error).__name__}: {error}"[:300]
            return list(self.start_symbols(self.required_symbols()))
        symbol = request.meta.get("symbol")
        if symbol is None:  # a page checkpointed before stocks failed over: no partition
            raise error
        if self.asked.get(symbol, provider) != provider:
            return []  # another request of this stock failed over already
        following = self.failover.on_failure(symbol, provider, error)
        if following == PROVIDER and not self.statement_models:
            self.failover.skip(symbol, PROVIDER, "its models listing was not read")
            following = self.failover.choose(symbol)
        logger.bind(worker_id=self.worker_id).warning(
            "{}: {} failed ({}); asking {}", symbol, provider, error, following
        )
        return self.symbol_requests(symbol, following)

    # -- answers -----------------------------------------------------------------------------
    def parse(self, response, request):
        """Models: keep the chart, then every stock's requests; listing: its stocks'; a
        statements page (VNDIRECT) or section (Vietcap): its rows."""
        kind = request.meta["kind"]
        if kind == "models":
            yield from self.parse_models(response, request)
        elif kind == "vietcap_metrics":  # the names first, then the stock's sections
            self.vietcap_names.update(vietcap.metric_names(response))
            yield from self.section_requests(request.meta["symbol"])
        elif kind == "listing":
            for item in paged_rows(response, request, "listing"):
                if isinstance(item, dict):
                    yield from self.start_symbols([str(item.get("code"))])
                elif isinstance(item, Request):
                    yield item
        else:
            rows = 0
            for item in self.parse_rows(response, request):
                rows += isinstance(item, dict)
                yield item
            if request.meta.get("symbol"):
                self.failover.on_success(
                    request.meta["symbol"], request.meta["provider"], rows=rows
                )

    def parse_rows(self, response, request):
        """The rows of one statements page or Vietcap section (and VNDIRECT's totals, pages)."""
        if request.meta["kind"] == "vietcap":
            skipped: Counter[str] = Counter()
            yield from vietcap.vietcap_rows(response, request, skipped, self.vietcap_names)
            self._note_skipped(request, skipped)
        else:
            yield from self.parse_statements(response, request)

    def parse_models(self, response, request):
        """Keep one page of the chart; after the last, the requests of every stock."""
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
        self.failover.book.record_success(PROVIDER, datetime.now(UTC), None)
        logger.bind(worker_id=self.worker_id).info(
            "statement models {}; skipped {}", sorted(self.statement_models), dict(self.skipped)
        )
        symbols = self.listed_symbols()
        if symbols is None:
            yield listing_request(1, 1000)
        else:
            yield from self.start_symbols(symbols)

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
        self._note_skipped(request, skipped)

    def _note_skipped(self, request: Request, skipped: Counter[str]) -> None:
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
