"""One-minute OHLCV bars per (source, symbol) from `trade_tick`, per ICT day: `trade_bars_1m`
for the round-the-clock markets (Binance) and `ssi_trade_bars_1m` (`derived.ssi_bars`) for the
Vietnamese market, whose partitions are its trading days.

A partition is one ICT calendar day: every trade whose `traded_at` falls in
[00:00 ICT, next 00:00 ICT) goes into the bar of its UTC minute (ICT is UTC+7, so minutes are the
same in both zones). open = first trade by (traded_at, trade_id), close = the last, high/low the
extremes, volume = sum of quantities, all exact decimals. Bars are written by idempotent upsert:
running a day again changes nothing unless new trades arrived. Each asset covers its own sources
only (`SourceSelection`), so the two never write the same bar.

Reconciliation: the sidecar keeps today's bars current as trades commit (`sidecar.bars`), so a
run over a day should find nothing to change. Every bar it would insert or change is a
difference: counted and sampled in the metadata, reported by the asset check `live_bars_match`
(failed, severity WARN, when there is any), and fixed by the same upsert.

Automation: the latest complete partition is materialized once its day is over (00:05 ICT) or
when a feed reports that day's partition again later, provided at least one feed reported
anything for that day (see `automation_condition`). Any range of partitions can be backfilled
(one run per range).
"""

import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import dagster as dg
from pydantic import Field, PositiveInt
from sqlalchemy import ColumnElement, Engine, select, tuple_

from ingestion_pipelines.config.workers import WorkerSettings, WorkerSpec, register
from ingestion_pipelines.core.timezones import ICT_NAME
from ingestion_pipelines.dagster_api.names import WORKER_TAG
from ingestion_pipelines.resources.database import DatabaseResource
from ingestion_pipelines.resources.worker_config import WorkerConfigResource
from ingestion_pipelines.sources.dagster_warnings import quiet_backfill_policy_beta
from ingestion_pipelines.storage.logs import run_logging
from ingestion_pipelines.storage.tables import trade_bar_1m, trade_tick
from ingestion_pipelines.storage.upsert import UpsertResult, upsert

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


def market_sources() -> frozenset[str]:
    """`trade_tick.source` of every feed of the Vietnamese market (`market_calendar`): their bars
    are `ssi_trade_bars_1m`'s, on trading days."""
    from ingestion_pipelines.feeds.base import feed_classes
    from ingestion_pipelines.vnmarket import calendar as market_calendar

    feeds = feed_classes()
    return frozenset(feeds[w].source for w in market_calendar.FEED_EXCHANGES if w in feeds)


def upstream_feeds(*, market: bool) -> list[dg.AssetKey]:
    """The feed assets whose ticks an asset reads: the feeds writing `trade_tick` of the
    Vietnamese market (`market=True`) or of every other market."""
    from ingestion_pipelines.feeds.base import feed_classes

    sources = market_sources()
    return [
        dg.AssetKey([worker_id])
        for worker_id, feed in feed_classes().items()
        if trade_tick.name in feed.tables and (feed.source in sources) is market
    ]


@dataclass(frozen=True)
class SourceSelection:
    """The `trade_tick.source` values an asset's bars cover: `only` these (None: any), none of
    `excluding`."""

    only: frozenset[str] | None = None
    excluding: frozenset[str] = frozenset()

    def clauses(self, column: Any) -> list[ColumnElement[bool]]:
        found = []
        if self.only is not None:
            found.append(column.in_(sorted(self.only)))
        if self.excluding:
            found.append(column.not_in(sorted(self.excluding)))
        return found


EVERY_SOURCE = SourceSelection()


def automation_condition() -> dg.AutomationCondition:
    """Materialize the latest complete partition once its ICT day is over, and again whenever a
    feed reports that day's partition afterwards (late ticks, a gap filled from REST).

    `AutomationCondition.eager()` is not used: it waits until *every* upstream has the day's
    partition, and a feed reports nothing on days it is switched off, which would block the
    other feeds' bars. `on_cron()` likewise needs all upstreams to be updated after the cron
    tick. Here one feed having reported the day is enough. The day's closing tick requests a
    partition only while it is missing: on trading-day partitions the latest complete partition
    stays Friday's over the weekend (and the last trading day's over a holiday), and each
    00:05 tick would otherwise run it again.
    """
    ac = dg.AutomationCondition
    day_closed = ac.cron_tick_passed(DAY_CLOSED_CRON, ICT_NAME).with_label(
        "ICT day closed (00:05 ICT)"
    )
    no_feed_reported = ac.all_deps_match(ac.missing()).with_label("no feed reported that day")
    return (
        ac.in_latest_time_window()
        & ((day_closed & ac.missing()) | ac.any_deps_updated()).since_last_handled()
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
    engine: Engine,
    start: datetime,
    end: datetime,
    *,
    batch_size: int = 5000,
    sources: SourceSelection = EVERY_SOURCE,
    result: BarsResult | None = None,
) -> BarsResult:
    """Compute the bars of every trade of `sources` with start <= traded_at < end and upsert
    them; counts are added to `result` when given (a run over several windows)."""
    result = result if result is not None else BarsResult()
    query = (
        select(
            trade_tick.c.source,
            trade_tick.c.symbol,
            trade_tick.c.trade_id,
            trade_tick.c.price,
            trade_tick.c.quantity,
            trade_tick.c.traded_at,
        )
        .where(
            trade_tick.c.traded_at >= start,
            trade_tick.c.traded_at < end,
            *sources.clauses(trade_tick.c.source),
        )
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


# ---- the assets -------------------------------------------------------------------------


@dataclass(frozen=True)
class BarsAsset:
    """What distinguishes one bars asset from the other: its worker id, partitions, the sources
    it covers and the feeds it depends on."""

    worker_id: str
    description: str
    partitions_def: dg.TimeWindowPartitionsDefinition
    sources: SourceSelection
    deps: list[dg.AssetKey]
    freshness_policy: dg.FreshnessPolicy


def partition_windows(
    partitions_def: dg.TimeWindowPartitionsDefinition, keys: Iterable[str]
) -> list[tuple[datetime, datetime]]:
    """The UTC time windows of `keys`, adjacent ones merged: a range of daily partitions is one
    window, a week of trading days one window per stretch between closed days."""
    windows: list[tuple[datetime, datetime]] = []
    for key in sorted(keys):
        window = partitions_def.time_window_for_partition_key(key)
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        if windows and windows[-1][1] == start:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, end))
    return windows


@quiet_backfill_policy_beta()
def bars_asset(spec: BarsAsset) -> dg.AssetsDefinition:
    """A bars asset: the run recomputes the bars of its partitions from `trade_tick` for the
    spec's sources, upserts them and reports `live_bars_match`."""
    worker_id = spec.worker_id

    @dg.asset(
        name=worker_id,
        group_name=GROUP,
        description=spec.description,
        deps=spec.deps,
        partitions_def=spec.partitions_def,
        automation_condition=automation_condition(),
        check_specs=[
            dg.AssetCheckSpec(
                LIVE_BARS_CHECK,
                asset=worker_id,
                description=(
                    "The bars the sidecar kept live match a recomputation from trade_tick: the "
                    "reconciliation found nothing to change (differences are listed, then fixed)."
                ),
            )
        ],
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL),
        pool=f"worker/{worker_id}",
        op_tags={WORKER_TAG: worker_id},
        kinds={"python", "sql"},
        metadata={
            "table": trade_bar_1m.name,
            "dagster/table_name": trade_bar_1m.name,
            "natural_key": "source, symbol, bar_start",
            "reads": trade_tick.name,
        },
        freshness_policy=spec.freshness_policy,
    )
    def _bars(
        context: dg.AssetExecutionContext,
        config: TradeBarsRunConfig,
        worker_config: WorkerConfigResource,
        database: DatabaseResource,
    ) -> dg.MaterializeResult:
        with run_logging(context, worker_id) as log:
            resolved = worker_config.resolve_for_run(worker_id, config)
            settings: TradeBarsSettings = resolved.settings
            engine = database.data_engine(settings.database_url)
            keys = context.partition_keys
            windows = partition_windows(spec.partitions_def, keys)
            log.info(
                "bars from trade_tick for {} ICT day(s) {}..{} in {} window(s)",
                len(keys),
                keys[0],
                keys[-1],
                len(windows),
            )
            result = BarsResult()
            for start, end in windows:
                log.info("window {} to {} UTC", start.isoformat(), end.isoformat())
                build_bars(
                    engine,
                    start,
                    end,
                    batch_size=settings.batch_size,
                    sources=spec.sources,
                    result=result,
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
            metadata["window_start"] = dg.MetadataValue.timestamp(windows[0][0])
            metadata["window_end"] = dg.MetadataValue.timestamp(windows[-1][1])
            metadata["days"] = len(keys)
            if result.differences:
                log.warning(
                    "{} bars differed from trade_tick and were fixed, e.g. {}",
                    result.differences,
                    result.difference_sample[:3],
                )
            return dg.MaterializeResult(metadata=metadata, check_results=[result.check_result()])

    return _bars


@functools.cache
def trade_bars_asset() -> dg.AssetsDefinition:
    """The `trade_bars_1m` asset: every source but the Vietnamese market's, on every ICT day
    (built once; the feed list is read when first called)."""
    return bars_asset(
        BarsAsset(
            worker_id=WORKER_ID,
            description=(
                "One-minute OHLCV bars per (source, symbol) from `trade_tick` of the markets that "
                "trade every day (Binance; the Vietnamese market's are `ssi_trade_bars_1m`), one "
                "partition per ICT calendar day (a trade at 23:59:59 ICT belongs to that day, one "
                "at 00:00 ICT to the next). Exact decimals; idempotent upsert into `trade_bar_1m`."
            ),
            partitions_def=bars_partitions_def(),
            sources=SourceSelection(excluding=market_sources()),
            deps=upstream_feeds(market=False),
            freshness_policy=dg.FreshnessPolicy.cron(
                deadline_cron="30 1 * * *",
                lower_bound_delta=timedelta(hours=1, minutes=30),
                timezone=ICT_NAME,
            ),
        )
    )
