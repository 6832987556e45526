"""`vn_stock_eod_adjusted`: the daily prices of `stock_eod` adjusted backward for the corporate
events of `corporate_event`, into `stock_eod_adjusted` (issue 19 item 7).

`stock_eod` holds raw prices in thousands of VND (VNDIRECT's unit); they are converted to VND
(`units.thousands_to_vnd`) and adjusted by `vnmarket.adjustment.adjust` (the standard backward
factors: every price before an ex-date times the factor of each later event, volumes divided by
the share factor). The raw table is never written: the adjusted prices have their own table.
Rows of `stock_eod` flagged `prices_adjusted` (Vietcap's chart bars, already adjusted) are not
read: adjusting them again would be wrong.

Which symbols a run derives: all of them, every time. A new event changes every earlier day of
its symbol, and a corrected raw price changes the factor of the next ex-date (it uses the
previous close), so a symbol is derived from its whole history; knowing which symbols changed
would need a change log neither upstream keeps (`corporate_event` has no "changed at"), and a
wrong guess leaves stale adjusted prices with nothing to show for it. The upsert writes only
rows whose values changed, so a run without news writes nothing; the cost is one ordered read of
`stock_eod` (streamed, one symbol in memory at a time). The `symbols` setting narrows a run.

Events: `type` in `adjustment.EventKind` with an `ex_date` (other types, e.g. ESOP issues, and
events not yet given an ex-date adjust nothing). The same event reported by two providers
(equal symbol, type, ex-date, ratio and amount) is applied once. A symbol whose events cannot be
applied (a rights issue: `corporate_event` has no subscription price) is not derived: it is
named in the run's metadata, and its earlier rows stay as they were.

Reconciliation (`provider_adjusted_close_matches`, severity WARN): our adjusted close against
the provider's own (`stock_eod.adjusted_close`, VNDIRECT's `adClose`) on every day both have,
judged by `price_steps.reconcile`: a day differing by more than one price step of the symbol's
exchange is named in the check's metadata. WARN, not ERROR: the provider is a second opinion,
not the truth; a difference most often means an event missing from `corporate_event` (its
worker reads one ticker today), which the check points at, and our rows are still the correct
adjustment for the events we hold.
"""

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from itertools import groupby
from typing import Any

import dagster as dg
from pydantic import Field, PositiveInt
from sqlalchemy import Engine, select

from ingestion_pipelines.config.workers import WorkerSettings, WorkerSpec, register
from ingestion_pipelines.dagster_api.names import WORKER_TAG
from ingestion_pipelines.derived.ssi_bars import longest_gap
from ingestion_pipelines.derived.trade_bars import GROUP
from ingestion_pipelines.resources.database import DatabaseResource
from ingestion_pipelines.resources.worker_config import WorkerConfigResource
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.logs import run_logging
from ingestion_pipelines.storage.tables import stock_eod, stock_eod_adjusted
from ingestion_pipelines.storage.upsert import UpsertResult, upsert
from ingestion_pipelines.vnmarket.adjustment import (
    AdjustmentError,
    Bar,
    CorporateEvent,
    EventKind,
    adjust,
)
from ingestion_pipelines.vnmarket.price_steps import PriceStepError, reconcile
from ingestion_pipelines.vnmarket.units import thousands_to_vnd

WORKER_ID = "vn_stock_eod_adjusted"
CHECK_NAME = "provider_adjusted_close_matches"
# The raw prices' one provider today is VNDIRECT.
RAW_PROVIDER = "vndirect"
READS = ("stock_eod", "corporate_event")  # the upstream assets: the sources declaring these


def writers_of(table_names: tuple[str, ...]) -> tuple[dg.AssetKey, ...]:
    """The asset of the YAML source declaring each table (its defs.yaml `table.name`)."""
    from ingestion_pipelines.storage.declared import writers_by_table

    by_table = writers_by_table()
    return tuple(dg.AssetKey([by_table[name]]) for name in table_names)


UPSTREAM = writers_of(READS)
# The stored factors: DECIMAL(38, 18) on servers; the prices use the exact factor.
FACTOR_PLACES = Decimal("1e-18")
_LISTED_MAX = 200


class AdjustedEodSettings(WorkerSettings):
    """Settings of `vn_stock_eod_adjusted`. `database_url` is where `stock_eod`,
    `corporate_event` (read) and `stock_eod_adjusted` (written) live."""

    batch_size: PositiveInt = Field(
        5000,
        description="rows per upsert transaction, whole symbols (a history is never split)",
    )
    symbols: list[str] = Field(
        default_factory=list, description="derive only these symbols (empty: every symbol)"
    )


SPEC = register(
    WorkerSpec(
        WORKER_ID,
        "derived",
        AdjustedEodSettings,
        "daily stock prices adjusted backward for corporate events (stock_eod + corporate_event)",
    )
)


class AdjustedEodRunConfig(dg.PermissiveConfig):
    """Run config: any key given here overrides the config chain for that run only."""


# ---- reading --------------------------------------------------------------------------------


def _event_kind(text: str | None) -> EventKind | None:
    try:
        return EventKind(text) if text else None
    except ValueError:
        return None


def read_events(engine: Engine, symbols: Sequence[str] = ()) -> dict[str, list[CorporateEvent]]:
    """The price-adjusting events of `corporate_event` per symbol, each once."""
    table = tables.corporate_event
    c = table.c
    query = select(c.symbol, c.type, c.ex_date, c.ratio, c.amount).where(c.ex_date.is_not(None))
    if symbols:
        query = query.where(c.symbol.in_(list(symbols)))
    found: dict[str, set[CorporateEvent]] = {}
    with engine.connect() as conn:
        for row in conn.execute(query).mappings():
            kind = _event_kind(row["type"])
            if kind is None:
                continue
            event = CorporateEvent(
                row["symbol"],
                kind,
                row["ex_date"],
                ratio=_exact(row["ratio"]),
                amount=_exact(row["amount"]),
            )
            found.setdefault(event.symbol, set()).add(event)
    return {s: sorted(e, key=lambda e: (e.ex_date, e.kind)) for s, e in found.items()}


def _exact(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).normalize()


def raw_histories(engine: Engine, symbols: Sequence[str] = ()) -> Iterator[list[dict[str, Any]]]:
    """Each symbol's raw `stock_eod` rows (not a provider's adjusted bars) in day order, one
    symbol at a time (streamed)."""
    c = stock_eod.c
    query = select(
        c.symbol, c.trade_date, c.exchange, c.open, c.high, c.low, c.close, c.volume,
        c.adjusted_close,
    ).order_by(c.symbol, c.trade_date)  # fmt: skip
    # a provider's adjusted bars (Vietcap's) are not raw prices: adjusting them again is wrong
    query = query.where(c.prices_adjusted.is_not(True))  # NULL (before 0028) is raw
    if symbols:
        query = query.where(c.symbol.in_(list(symbols)))
    with engine.connect() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=10_000).execute(query)
        for _, history in groupby(rows.mappings(), key=lambda r: r["symbol"]):
            yield [dict(r) for r in history]


# ---- the computation ------------------------------------------------------------------------


def _vnd(value: Any) -> Decimal:
    return thousands_to_vnd(Decimal(str(value)))


def adjusted_rows(
    symbol: str, history: Sequence[Mapping[str, Any]], events: Sequence[CorporateEvent]
) -> list[dict[str, Any]]:
    """The `stock_eod_adjusted` rows of one symbol's raw history (thousands of VND)."""
    bars = [
        Bar(
            r["trade_date"],
            _vnd(r["open"]),
            _vnd(r["high"]),
            _vnd(r["low"]),
            _vnd(r["close"]),
            Decimal(str(r["volume"])),
        )
        for r in history
    ]
    raw = {r["trade_date"]: r for r in history}
    rows = []
    for bar in adjust(bars, events):
        source = raw[bar.day]
        theirs = source["adjusted_close"]
        rows.append(
            {
                "symbol": symbol,
                "trade_date": bar.day,
                "provider": RAW_PROVIDER,
                "exchange": source["exchange"],
                "open": bar.open,
                "high": bar.high,
                "low": bar.low,
                "close": bar.close,
                "volume": bar.volume,
                "factor": bar.factor.quantize(FACTOR_PLACES),
                "share_factor": bar.share_factor.quantize(FACTOR_PLACES),
                "provider_adjusted_close": None if theirs is None else _vnd(theirs),
            }
        )
    return rows


@dataclass
class AdjustedResult:
    """What a run derived and what the reconciliation found."""

    rows: UpsertResult = field(default_factory=UpsertResult)
    symbols: int = 0
    symbols_with_events: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    days_compared: int = 0
    differences: list[str] = field(default_factory=list)
    unjudged: dict[str, str] = field(default_factory=dict)

    def reconcile(self, symbol: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Compare our adjusted close with the provider's on the days both have."""
        theirs = {
            r["trade_date"]: r["provider_adjusted_close"]
            for r in rows
            if r["provider_adjusted_close"] is not None
        }
        if not theirs:
            return
        exchange = next((r["exchange"] for r in reversed(rows) if r["exchange"]), None)
        if exchange is None:
            self.unjudged[symbol] = "no exchange known: no price step"
            return
        ours = {r["trade_date"]: r["close"] for r in rows}
        try:
            found = reconcile(symbol, ours, theirs, exchange)
        except PriceStepError as exc:
            self.unjudged[symbol] = str(exc)
            return
        self.days_compared += found.compared
        self.differences.extend(d.describe() for d in found.differences)

    def check_result(self) -> dg.AssetCheckResult:
        """`provider_adjusted_close_matches`: no day differs by more than one price step."""
        if self.differences:
            description = (
                f"{len(self.differences)} of {self.days_compared} days differ from the "
                "provider's adjusted close by more than one price step"
            )
        else:
            description = (
                f"all {self.days_compared} days within one price step of the provider's "
                "adjusted close"
            )
        return dg.AssetCheckResult(
            check_name=CHECK_NAME,
            passed=not self.differences,
            severity=dg.AssetCheckSeverity.WARN,
            description=description,
            metadata={
                "days_compared": self.days_compared,
                "days_over_one_step": len(self.differences),
                "days": dg.MetadataValue.json(self.differences[:_LISTED_MAX]),
                "symbols_not_judged": dg.MetadataValue.json(self.unjudged),
            },
        )

    def metadata(self) -> dict[str, Any]:
        return {
            "symbols": self.symbols,
            "symbols_with_events": self.symbols_with_events,
            "symbols_skipped": dg.MetadataValue.json(
                dict(list(self.skipped.items())[:_LISTED_MAX])
            ),
            "rows": self.rows.total,
            "rows_inserted": self.rows.inserted,
            "rows_updated": self.rows.updated,
            "rows_unchanged": self.rows.unchanged,
        }


def build_adjusted(
    engine: Engine, *, batch_size: int = 5000, symbols: Sequence[str] = ()
) -> AdjustedResult:
    """Derive `stock_eod_adjusted` for every symbol of `stock_eod` (or `symbols`), upserted in
    batches, and reconcile each symbol with the provider's adjusted close."""
    result = AdjustedResult()
    events = read_events(engine, symbols)
    batch: list[dict[str, Any]] = []
    for history in raw_histories(engine, symbols):
        symbol = history[0]["symbol"]
        result.symbols += 1
        mine = events.get(symbol, [])
        result.symbols_with_events += bool(mine)
        try:
            rows = adjusted_rows(symbol, history, mine)
        except AdjustmentError as exc:
            result.skipped[symbol] = str(exc)
            continue
        result.reconcile(symbol, rows)
        batch.extend(rows)
        if len(batch) >= batch_size:
            result.rows = result.rows + upsert(engine, stock_eod_adjusted, batch)
            batch = []
    if batch:
        result.rows = result.rows + upsert(engine, stock_eod_adjusted, batch)
    return result


# ---- the asset ------------------------------------------------------------------------------


def automation_condition() -> dg.AutomationCondition:
    """Run when the sources of `stock_eod` or `corporate_event` wrote something, once neither is still
    running (a first run without news upstream is launched by hand: nothing would change)."""
    ac = dg.AutomationCondition
    return (
        ac.any_deps_updated().since_last_handled() & ~ac.any_deps_in_progress() & ~ac.in_progress()
    ).with_label("after new prices or events")


@functools.cache
def adjusted_eod_asset() -> dg.AssetsDefinition:
    """The `vn_stock_eod_adjusted` asset (unpartitioned: each run derives whole histories)."""

    @dg.asset(
        name=WORKER_ID,
        group_name=GROUP,
        description=(
            "Daily prices of `stock_eod` adjusted backward for the events of `corporate_event` "
            "(VND; volume in adjusted shares; the factors applied), every symbol's whole history "
            "each run; idempotent upsert into `stock_eod_adjusted`."
        ),
        deps=list(UPSTREAM),
        automation_condition=automation_condition(),
        check_specs=[
            dg.AssetCheckSpec(
                CHECK_NAME,
                asset=WORKER_ID,
                description=(
                    "Our adjusted close is within one price step of the provider's adjusted close "
                    "(stock_eod.adjusted_close) on every day both have; the days that are not "
                    "are listed."
                ),
            )
        ],
        retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL),
        pool=f"worker/{WORKER_ID}",
        op_tags={WORKER_TAG: WORKER_ID},
        kinds={"python", "sql"},
        metadata={
            "table": stock_eod_adjusted.name,
            "dagster/table_name": stock_eod_adjusted.name,
            "natural_key": "symbol, trade_date",
            "reads": "stock_eod, corporate_event",
        },
        # Stale only when no run happened for longer than the market ever closes (Tết).
        freshness_policy=dg.FreshnessPolicy.time_window(fail_window=longest_gap() + timedelta(1)),
    )
    def _adjusted(
        context: dg.AssetExecutionContext,
        config: AdjustedEodRunConfig,
        worker_config: WorkerConfigResource,
        database: DatabaseResource,
    ) -> dg.MaterializeResult:
        with run_logging(context, WORKER_ID) as log:
            settings: AdjustedEodSettings = worker_config.resolve_for_run(
                WORKER_ID, config
            ).settings
            engine = database.data_engine(settings.database_url)
            result = build_adjusted(
                engine, batch_size=settings.batch_size, symbols=settings.symbols
            )
            log.info(
                "{} symbols ({} with events) -> {} rows ({} inserted, {} updated, {} unchanged)",
                result.symbols,
                result.symbols_with_events,
                result.rows.total,
                result.rows.inserted,
                result.rows.updated,
                result.rows.unchanged,
            )
            if result.skipped:
                log.warning("symbols not derived: {}", dict(list(result.skipped.items())[:5]))
            if result.differences:
                log.warning("differ from the provider's adjusted close: {}", result.differences[:5])
            return dg.MaterializeResult(
                metadata=result.metadata(), check_results=[result.check_result()]
            )

    return _adjusted
