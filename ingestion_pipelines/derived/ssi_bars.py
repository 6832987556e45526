"""`ssi_trade_bars_1m`: the one-minute bars of the Vietnamese market's symbols (the SSI feed), one
partition per trading day of the market calendar (`market_calendar`): weekends, Tết and the
other closed days have no partition, so nothing is expected, run or backfilled for them.

The keys are those of `vn_stock_eod` (the same trading days since `START_DATE`); the window of a
partition is its own ICT day only ([00:00, next 00:00)), not the following closed days as
`vn_stock_eod`'s, so a tick stamped on a closed day belongs to no partition (the check
`market_calendar` reports any bar there). The computation, the `live_bars_match`
reconciliation, the automation and the settings are `trade_bars_1m`'s (`derived.trade_bars`),
for the market's sources only.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta

import dagster as dg

from ingestion_pipelines.config.workers import WorkerSpec, register
from ingestion_pipelines.core.timezones import ICT, ICT_NAME
from ingestion_pipelines.derived.trade_bars import (
    START_DATE,
    BarsAsset,
    SourceSelection,
    TradeBarsSettings,
    bars_asset,
    market_sources,
    upstream_feeds,
)
from ingestion_pipelines.vnmarket import calendar as market_calendar

SSI_WORKER_ID = "ssi_trade_bars_1m"
WEEKENDS = ("0 0 * * 6", "0 0 * * 0")
# The daily reconciliation runs at 00:05 ICT; allow it until 01:30, as `trade_bars_1m` does.
_RUN_SLACK = timedelta(hours=1, minutes=30)

SPEC = register(
    WorkerSpec(
        SSI_WORKER_ID,
        "derived",
        TradeBarsSettings,
        "one-minute OHLCV bars of the Vietnamese market's symbols (SSI) from trade_tick, "
        "per trading day",
    )
)


def trading_day_partitions_def() -> dg.TimeWindowPartitionsDefinition:
    """One partition per trading day, each window its own ICT day; only complete days exist
    (end_offset 0: today's bars are not final). Closed weekdays come from the market calendar
    up to its last reviewed year."""
    closed_weekdays = [
        datetime.combine(day, datetime.min.time(), ICT)
        for day in market_calendar.closed_weekdays(date.fromisoformat(START_DATE))
    ]
    return dg.TimeWindowPartitionsDefinition(
        start=START_DATE,
        fmt="%Y-%m-%d",
        cron_schedule="0 0 * * *",
        timezone=ICT_NAME,
        exclusions=[*WEEKENDS, *closed_weekdays],
    )


def longest_gap() -> timedelta:
    """The longest time from one trading day to the next over the calendar (Tết)."""
    days = list(
        market_calendar.trading_days(date.fromisoformat(START_DATE), market_calendar.calendar_end())
    )
    return max((b - a for a, b in zip(days, days[1:], strict=False)), default=timedelta(days=1))


def freshness_policy() -> dg.FreshnessPolicy:
    """Stale only when no reconciliation ran for longer than the market ever closes: a weekend
    or Tết without a new partition is expected, not a failure."""
    return dg.FreshnessPolicy.time_window(fail_window=longest_gap() + _RUN_SLACK)


@functools.cache
def ssi_trade_bars_asset() -> dg.AssetsDefinition:
    """The `ssi_trade_bars_1m` asset (built once; the feed list is read when first called)."""
    return bars_asset(
        BarsAsset(
            worker_id=SSI_WORKER_ID,
            description=(
                "One-minute OHLCV bars per symbol of the Vietnamese market (SSI) from "
                "`trade_tick`, one partition per trading day of the market calendar (no "
                "partition on weekends and holidays), each covering its ICT day. Exact decimals; "
                "idempotent upsert into `trade_bar_1m`."
            ),
            partitions_def=trading_day_partitions_def(),
            sources=SourceSelection(only=market_sources()),
            deps=upstream_feeds(market=True),
            freshness_policy=freshness_policy(),
        )
    )
