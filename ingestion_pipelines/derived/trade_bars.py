"""`trade_bars_1m`: one-minute OHLCV bars per (source, symbol) from `trade_tick`, per ICT day.

A partition is one ICT calendar day: every trade whose `traded_at` falls in
[00:00 ICT, next 00:00 ICT) goes into the bar of its UTC minute (ICT is UTC+7, so minutes are the
same in both zones). open = first trade by (traded_at, trade_id), close = the last, high/low the
extremes, volume = sum of quantities, all exact decimals. Bars are written by idempotent upsert:
running a day again changes nothing unless new trades arrived.

Reconciliation: the sidecar keeps today's bars current as trades commit (`sidecar.bars`), so a
run over a day should find nothing to change. Every bar it would insert or change is a
difference: counted and sampled in the metadata, reported by the asset check `live_bars_match`
(failed, severity WARN, when there is any), and fixed by the same upsert.

Automation: the latest complete ICT day is materialized once that day is over (00:05 ICT) or
when a feed reports that day's partition again later, provided at least one feed reported
anything for that day (see `automation_condition`). Any range of days can be backfilled (one
run per range).
"""

import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import dagster as dg
from pydantic import Field, PositiveInt
from sqlalchemy import Engine, select, tuple_

from ingestion_pipelines.dagster_api.names import WORKER_TAG
from ingestion_pipelines.dagster_warnings import quiet_backfill_policy_beta
from ingestion_pipelines.logs import run_logging
from ingestion_pipelines.resources.database import DatabaseResource
from ingestion_pipelines.resources.worker_config import WorkerConfigResource
from ingestion_pipelines.storage.tables import trade_bar_1m, trade_tick
from ingestion_pipelines.storage.upsert import UpsertResult, upsert
from ingestion_pipelines.timezones import ICT_NAME
from ingestion_pipelines.workers import WorkerSettings, WorkerSpec, register

WORKER_ID = "trade_bars_1m"
GROUP = "derived"
START_DATE = "2025-01-01"
# A feed day is over at 00:00 ICT; five minutes later the sidecar has flushed its last ticks.
DAY_CLOSED_CRON = "5 0 * * *"
_SYMBOL_LIST_MAX = 200
_DIFFERENCE_SAMPLE_MAX = 20
LIVE_BARS_CHECK = "live_bars_match"
_BAR_VALUES = ("open", "high", "low", "close", "volume", "trade_count")


class TradeBarsSettings(WorkerSettings):
    """Settings of `trade_bars_1m`. `database_url` is where both `trade_tick` (read) and
    `trade_bar_1m` (written) live, when not in `INGEST_DATABASE_URL`."""

    batch_size: PositiveInt = Field(5000, description="bars per upsert transaction")


SPEC = register(
    WorkerSpec(
        WORKER_ID,
        "derived",
        TradeBarsSettings,
        "one-minute OHLCV bars per (source, symbol) from trade_tick, per ICT day",
    )
)


class TradeBarsRunConfig(dg.PermissiveConfig):
    """Run config: any key given here overrides the config chain for that run only."""


def bars_partitions_def() -> dg.DailyPartitionsDefinition:
    """ICT calendar days; only complete days (end_offset 0): today's bars are not final."""
    return dg.DailyPartitionsDefinition(start_date=START_DATE, timezone=ICT_NAME)


def upstream_feeds() -> list[dg.AssetKey]:
    """The feed assets whose data the bars read: every feed that writes `trade_tick`."""
    from ingestion_pipelines.feeds.base import feed_classes

    return [
        dg.AssetKey([worker_id])
        for worker_id, feed in feed_classes().items()
        if trade_tick.name in feed.tables
    ]


def automation_condition() -> dg.AutomationCondition:
    """Materialize the latest complete ICT day when that day is over, and again whenever a feed
    reports that day's partition afterwards (late ticks, a gap filled from REST).

    `AutomationCondition.eager()` is not used: it waits until *every* upstream has the day's
    partition, and `ssi_iboard` reports nothing on days without trading (or when it is switched
    off), which would block Binance bars forever. `on_cron()` likewise needs all upstreams to be
    updated after the cron tick. Here one feed having reported the day is enough.
    """
    ac = dg.AutomationCondition
    day_closed = ac.cron_tick_passed(DAY_CLOSED_CRON, ICT_NAME).with_label(
        "ICT day closed (00:05 ICT)"
    )
    no_feed_reported = ac.all_deps_match(ac.missing()).with_label("no feed reported that day")
    return (
        ac.in_latest_time_window()
        & (day_closed | ac.any_deps_updated()).since_last_handled()
        & ~no_feed_reported
        & ~ac.any_deps_in_progress()
        & ~ac.in_progress()
    ).with_label("after a feed day completes")


# ---- the computation ----------------------------------------------------------------------


@dataclass
class BarsResult:
    trades_read: int = 0
    bars: UpsertResult = field(default_factory=UpsertResult)
    symbols: set[tuple[str, str]] = field(default_factory=set)
    differences: int = 0
    difference_sample: list[dict[str, Any]] = field(default_factory=list)

    def note_differences(self, found: list[dict[str, Any]]) -> None:
        self.differences += len(found)
        room = _DIFFERENCE_SAMPLE_MAX - len(self.difference_sample)
        self.difference_sample.extend(found[: max(room, 0)])

    def check_result(self) -> dg.AssetCheckResult:
        """`live_bars_match`: the bars kept live by the sidecar needed no change."""
        if not self.differences:
            description = f"all {self.bars.total} bars of the window matched trade_tick"
        else:
            description = (
                f"{self.differences} of {self.bars.total} bars differed from a recomputation "
                "from trade_tick (missing or changed); they are fixed now"
            )
        return dg.AssetCheckResult(
            check_name=LIVE_BARS_CHECK,
            passed=self.differences == 0,
            severity=dg.AssetCheckSeverity.WARN,
            description=description,
            metadata={
                "differences": self.differences,
                "bars": self.bars.total,
                "difference_sample": dg.MetadataValue.json(self.difference_sample),
            },
        )

    def metadata(self) -> dict[str, Any]:
        listed = sorted(f"{source}:{symbol}" for source, symbol in self.symbols)
        return {
            "bar_differences": self.differences,
            "bars_inserted": self.bars.inserted,
            "bars_updated": self.bars.updated,
            "bars_unchanged": self.bars.unchanged,
            "bars": self.bars.total,
            "trades_read": self.trades_read,
            "symbols": len(self.symbols),
            "symbol_list": dg.MetadataValue.json(listed[:_SYMBOL_LIST_MAX]),
        }


def aggregate_bars(ticks: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """One-minute bars from ticks ordered by (source, symbol, traded_at, trade_id)."""
    bar: dict[str, Any] | None = None
    for tick in ticks:
        traded_at = tick["traded_at"]
        if traded_at.tzinfo is None:
            traded_at = traded_at.replace(tzinfo=UTC)
        minute = traded_at.astimezone(UTC).replace(second=0, microsecond=0)
        price = Decimal(tick["price"])
        quantity = Decimal(tick["quantity"])
        if (
            bar is None
            or bar["bar_start"] != minute
            or bar["symbol"] != tick["symbol"]
            or bar["source"] != tick["source"]
        ):
            if bar is not None:
                yield bar
            bar = {
                "source": tick["source"],
                "symbol": tick["symbol"],
                "bar_start": minute,
                "open": price,
                "high": price,
                "low": price,
                "close": price,
                "volume": quantity,
                "trade_count": 1,
            }
            continue
        if price > bar["high"]:
            bar["high"] = price
        if price < bar["low"]:
            bar["low"] = price
        bar["close"] = price
        bar["volume"] += quantity
        bar["trade_count"] += 1
    if bar is not None:
        yield bar


def _text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    return str(value)


def bar_differences(engine: Engine, bars: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bars of `bars` that `trade_bar_1m` lacks or holds with other values, each with what
    is stored (None: missing) and what trade_tick gives."""
    c = trade_bar_1m.c
    keys = [(b["source"], b["symbol"], b["bar_start"]) for b in bars]
    query = select(trade_bar_1m).where(tuple_(c.source, c.symbol, c.bar_start).in_(keys))
    with engine.connect() as conn:
        stored = {
            (r["source"], r["symbol"], r["bar_start"]): r for r in conn.execute(query).mappings()
        }
    found = []
    for key, bar in zip(keys, bars, strict=True):
        row = stored.get(key)
        if row is not None and all(
            Decimal(str(row[name])) == Decimal(str(bar[name])) for name in _BAR_VALUES
        ):
            continue
        found.append(
            {
                "source": key[0],
                "symbol": key[1],
                "bar_start": key[2].isoformat(),
                "stored": None if row is None else {n: _text(row[n]) for n in _BAR_VALUES},
                "recomputed": {n: _text(bar[n]) for n in _BAR_VALUES},
            }
        )
    return found


def build_bars(
    engine: Engine, start: datetime, end: datetime, *, batch_size: int = 5000
) -> BarsResult:
    """Compute the bars of every trade with start <= traded_at < end and upsert them."""
    result = BarsResult()
    query = (
        select(
            trade_tick.c.source,
            trade_tick.c.symbol,
            trade_tick.c.trade_id,
            trade_tick.c.price,
            trade_tick.c.quantity,
            trade_tick.c.traded_at,
        )
        .where(trade_tick.c.traded_at >= start, trade_tick.c.traded_at < end)
        .order_by(
            trade_tick.c.source,
            trade_tick.c.symbol,
            trade_tick.c.traded_at,
            trade_tick.c.trade_id,
        )
    )

    def counted(rows: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        for row in rows:
            result.trades_read += 1
            yield row

    # Ticks are streamed and bars written in batches, so a busy day never sits in memory whole;
    # the writes go through their own connections (one transaction per batch).
    with engine.connect() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=10_000).execute(query)
        batch: list[dict[str, Any]] = []
        for bar in aggregate_bars(counted(rows.mappings())):
            result.symbols.add((bar["source"], bar["symbol"]))
            batch.append(bar)
            if len(batch) >= batch_size:
                result.note_differences(bar_differences(engine, batch))
                result.bars = result.bars + upsert(engine, trade_bar_1m, batch)
                batch = []
        if batch:
            result.note_differences(bar_differences(engine, batch))
            result.bars = result.bars + upsert(engine, trade_bar_1m, batch)
    return result


# ---- the asset ----------------------------------------------------------------------------


@functools.cache
@quiet_backfill_policy_beta()
def trade_bars_asset() -> dg.AssetsDefinition:
    """The `trade_bars_1m` asset (built once; the feed list is read when first called)."""

    @dg.asset(
        name=WORKER_ID,
        group_name=GROUP,
        description=(
            "One-minute OHLCV bars per (source, symbol) from `trade_tick`, one partition per ICT "
            "calendar day (a trade at 23:59:59 ICT belongs to that day, one at 00:00 ICT to the "
            "next). Exact decimals; idempotent upsert into `trade_bar_1m`."
        ),
        deps=upstream_feeds(),
        partitions_def=bars_partitions_def(),
        automation_condition=automation_condition(),
        check_specs=[
            dg.AssetCheckSpec(
                LIVE_BARS_CHECK,
                asset=WORKER_ID,
                description=(
                    "The bars the sidecar kept live match a recomputation from trade_tick: the "
                    "reconciliation found nothing to change (differences are listed, then fixed)."
                ),
            )
        ],
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL),
        pool=f"worker/{WORKER_ID}",
        op_tags={WORKER_TAG: WORKER_ID},
        kinds={"python", "sql"},
        metadata={
            "table": trade_bar_1m.name,
            "dagster/table_name": trade_bar_1m.name,
            "natural_key": "source, symbol, bar_start",
            "reads": trade_tick.name,
        },
        freshness_policy=dg.FreshnessPolicy.cron(
            deadline_cron="30 1 * * *",
            lower_bound_delta=timedelta(hours=1, minutes=30),
            timezone=ICT_NAME,
        ),
    )
    def trade_bars_1m(
        context: dg.AssetExecutionContext,
        config: TradeBarsRunConfig,
        worker_config: WorkerConfigResource,
        database: DatabaseResource,
    ) -> dg.MaterializeResult:
        with run_logging(context, WORKER_ID) as log:
            resolved = worker_config.resolve_for_run(WORKER_ID, config)
            settings: TradeBarsSettings = resolved.settings
            window = context.partition_time_window
            start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
            log.info(
                "bars from trade_tick for ICT days {}..{} ({} to {} UTC)",
                window.start.date(),
                (window.end - timedelta(days=1)).date(),
                start.isoformat(),
                end.isoformat(),
            )
            result = build_bars(
                database.data_engine(settings.database_url),
                start,
                end,
                batch_size=settings.batch_size,
            )
            log.info(
                "{} trades -> {} bars ({} inserted, {} updated, {} unchanged) for {} symbols",
                result.trades_read,
                result.bars.total,
                result.bars.inserted,
                result.bars.updated,
                result.bars.unchanged,
                len(result.symbols),
            )
            metadata = result.metadata()
            metadata["window_start"] = dg.MetadataValue.timestamp(start)
            metadata["window_end"] = dg.MetadataValue.timestamp(end)
            if result.differences:
                log.warning(
                    "{} bars differed from trade_tick and were fixed, e.g. {}",
                    result.differences,
                    result.difference_sample[:3],
                )
            return dg.MaterializeResult(metadata=metadata, check_results=[result.check_result()])

    return trade_bars_1m
