"""`ssi_trade_bars_1m` (the Vietnamese market's bars) follows the market calendar: over the last
complete ICT days, bars exist on trading days only, inside trading hours (the widest of the
boards' sessions, 08:45-15:00 ICT). Closed days have no partition, but the sidecar keeps bars
live for every tick it commits: a bar on a closed day or at night means trades were stamped
wrongly; the check `market_calendar` names the days and counts the bars. Today is left out: the
day is not complete (and the demo's replay stamps frames with the current time)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import dagster as dg
from sqlalchemy import Engine, select

from ingestion_pipelines.derived.ssi_bars import SSI_WORKER_ID
from ingestion_pipelines.derived.trade_bars import market_sources
from ingestion_pipelines.resources.database import DatabaseResource
from ingestion_pipelines.resources.worker_config import WorkerConfigResource
from ingestion_pipelines.storage.tables import trade_bar_1m
from ingestion_pipelines.vnmarket import calendar as market_calendar

CHECK_NAME = "market_calendar"
LOOKBACK_DAYS = 7
_SHOWN = 5


def trading_hours() -> tuple[time, time]:
    """The earliest opening and the latest close over every board."""
    phases = [p for board in market_calendar.PHASES.values() for p in board]
    return min(p.start for p in phases), max(p.end for p in phases)


@dataclass
class MarketBarsVerdict:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def judge_market_bars(bar_starts: list[datetime], start: date, end: date) -> MarketBarsVerdict:
    """Judge the start times of the market's bars for the ICT days [start, end)."""
    opens, closes = trading_hours()
    per_day: Counter[date] = Counter()
    outside: Counter[date] = Counter()
    for bar_start in bar_starts:
        local = bar_start.astimezone(market_calendar.ICT)
        per_day[local.date()] += 1
        if not opens <= local.time() < closes:
            outside[local.date()] += 1
    closed = {d: n for d, n in sorted(per_day.items()) if not market_calendar.is_trading_day(d)}
    trading = list(market_calendar.trading_days(start, end))
    metadata = {
        "days": f"{start}..{end - timedelta(days=1)}",
        "trading_days": len(trading),
        "trading_days_with_bars": sum(1 for d in trading if per_day[d]),
        "bars_on_closed_days": sum(closed.values()),
        "bars_outside_trading_hours": sum(outside.values()),
    }
    problems = []
    if closed:
        shown = ", ".join(
            f"{d} ({market_calendar.closure(d)}: {n})" for d, n in list(closed.items())[:_SHOWN]
        )
        problems.append(f"bars on non-trading days: {shown}")
    if outside:
        shown = ", ".join(f"{d}: {n}" for d, n in sorted(outside.items())[:_SHOWN])
        problems.append(f"bars outside {opens:%H:%M}-{closes:%H:%M} ICT: {shown}")
    if problems:
        return MarketBarsVerdict(False, "; ".join(problems), metadata)
    return MarketBarsVerdict(
        True,
        f"bars only on trading days, in trading hours ({metadata['trading_days_with_bars']} of "
        f"{len(trading)} trading days with bars; none expected on the other days)",
        metadata,
    )


def read_bar_starts(engine: Engine, sources: list[str], start: date, end: date) -> list[datetime]:
    """Start times of the bars of `sources` for the ICT days [start, end)."""
    query = select(trade_bar_1m.c.bar_start).where(
        trade_bar_1m.c.source.in_(sources),
        trade_bar_1m.c.bar_start >= datetime.combine(start, time(0), market_calendar.ICT),
        trade_bar_1m.c.bar_start < datetime.combine(end, time(0), market_calendar.ICT),
    )
    with engine.connect() as conn:
        # Stored as UTC; SQLite and MySQL hand them back naive.
        return [v if v.tzinfo else v.replace(tzinfo=UTC) for (v,) in conn.execute(query)]


def market_bars_check() -> dg.AssetChecksDefinition:
    """The `market_calendar` check of `ssi_trade_bars_1m`. It runs with the runs that select the
    asset's checks (the UI's Materialize, backfills) and on demand, not from the automation
    sensor: the demo's SSI replay stamps frames with the current time at any hour, and a demo
    left running overnight must not raise an alert the next morning."""

    @dg.asset_check(
        asset=dg.AssetKey([SSI_WORKER_ID]),
        name=CHECK_NAME,
        description=(
            "Bars of the Vietnamese market's symbols (SSI) exist only on trading days and in "
            f"trading hours, over the last {LOOKBACK_DAYS} complete ICT days (market_calendar)."
        ),
        blocking=False,
    )
    def _check(
        database: DatabaseResource, worker_config: WorkerConfigResource
    ) -> dg.AssetCheckResult:
        end = datetime.now(market_calendar.ICT).date()
        start = end - timedelta(days=LOOKBACK_DAYS)
        settings = worker_config.resolve(SSI_WORKER_ID).settings
        engine = database.data_engine(settings.database_url)
        verdict = judge_market_bars(
            read_bar_starts(engine, sorted(market_sources()), start, end), start, end
        )
        return dg.AssetCheckResult(
            passed=verdict.passed,
            severity=dg.AssetCheckSeverity.WARN,
            description=verdict.description,
            metadata=verdict.metadata,
        )

    return _check
