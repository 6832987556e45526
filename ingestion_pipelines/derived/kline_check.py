"""`klines_match_trade_bars`: Binance's own 1-minute klines (`binance_klines` → `kline`) against
the bars we build from its trades (`trade_bars_1m` → `trade_bar_1m`), minute by minute.

For every (symbol, minute) both tables hold over the last `LOOKBACK` (closed klines only: one
whose close time is still ahead may change; bars of the last `SETTLING` minutes are left out,
the sidecar may not have committed their last trades yet), open, high, low, close, volume and
trade count must be equal: Binance builds its klines from the same trades, and a kline's trade
count is its last trade id minus its first plus one. Every differing minute is named, with the
values that differ (description: the first ones; metadata `differences`: all of them). Minutes
one side lacks are counted, not judged: the feed may not have run, or the day not been fetched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import dagster as dg
from sqlalchemy import Engine, select

from ingestion_pipelines.resources.database import DatabaseResource
from ingestion_pipelines.resources.worker_config import WorkerConfigResource
from ingestion_pipelines.storage import tables

TABLE = "kline"  # checked on the asset of the source declaring it
CHECK_NAME = "klines_match_trade_bars"
SOURCE = "binance"
INTERVAL = "1m"
LOOKBACK = timedelta(days=2)
SETTLING = timedelta(minutes=2)
COMPARED = ("open", "high", "low", "close", "volume", "trade_count")
_DESCRIBED = 20

Minute = tuple[str, datetime]  # (symbol, minute start, UTC)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite/MySQL give naive


def kline_differences(
    klines: Mapping[Minute, Mapping[str, Any]], bars: Mapping[Minute, Mapping[str, Any]]
) -> list[str]:
    """One line per minute both hold whose values differ, naming the minute and every value."""
    found = []
    for minute in sorted(klines.keys() & bars.keys()):
        kline, bar = klines[minute], bars[minute]
        differing = [
            f"{c} {_text(kline[c])} vs {_text(bar[c])}" for c in COMPARED if kline[c] != bar[c]
        ]
        if differing:
            symbol, start = minute
            found.append(
                f"{symbol} {start:%Y-%m-%d %H:%M}Z: {', '.join(differing)} (kline vs trades)"
            )
    return found


def _text(value: Any) -> str:
    """A value as text, a decimal without the trailing zeros its column's scale adds."""
    return format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)


def _by_minute(rows: Iterable[Mapping[str, Any]], time_column: str) -> dict[Minute, dict]:
    return {(r["symbol"], _utc(r[time_column])): dict(r) for r in rows}


def read_minutes(engine: Engine, start: datetime, now: datetime) -> tuple[dict, dict]:
    """(closed klines, trade bars) of Binance from `start`, by (symbol, minute)."""
    kline, bar = tables.metadata.tables[TABLE], tables.trade_bar_1m
    settled = now - SETTLING
    kline_query = select(kline.c.symbol, kline.c.open_time, *(kline.c[c] for c in COMPARED)).where(
        kline.c.source == SOURCE,
        kline.c.interval == INTERVAL,
        kline.c.open_time >= start,
        kline.c.close_time < settled,
    )
    bar_query = select(bar.c.symbol, bar.c.bar_start, *(bar.c[c] for c in COMPARED)).where(
        bar.c.source == SOURCE, bar.c.bar_start >= start, bar.c.bar_start < settled
    )
    with engine.connect() as conn:
        klines = _by_minute(conn.execute(kline_query).mappings(), "open_time")
        bars = _by_minute(conn.execute(bar_query).mappings(), "bar_start")
    return klines, bars


def judge(klines: dict, bars: dict, start: datetime) -> dg.AssetCheckResult:
    """The check's result for the minutes read."""
    differences = kline_differences(klines, bars)
    both = len(klines.keys() & bars.keys())
    metadata = {
        "since": dg.MetadataValue.timestamp(start),
        "minutes_compared": both,
        "minutes_only_in_klines": len(klines.keys() - bars.keys()),
        "minutes_only_in_trade_bars": len(bars.keys() - klines.keys()),
        "differing_minutes": len(differences),
        "differences": dg.MetadataValue.json(differences),
    }
    if differences:
        shown = "; ".join(differences[:_DESCRIBED])
        more = (
            f" (all {len(differences)} in metadata `differences`)" if len(differences) > 1 else ""
        )
        description = f"{len(differences)} of {both} minutes differ: {shown}{more}"
    else:
        description = f"all {both} minutes held by both tables are equal"
    return dg.AssetCheckResult(
        passed=not differences,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata=metadata,
    )


def kline_bars_check() -> dg.AssetChecksDefinition:
    """The check on the asset of the source declaring `kline` (binance_klines), run with its
    materializations (its job selects it)."""
    from ingestion_pipelines.storage.declared import writers_by_table

    asset = writers_by_table()[TABLE]

    @dg.asset_check(
        asset=dg.AssetKey([asset]),
        name=CHECK_NAME,
        description=(
            "Binance's 1-minute klines equal the bars built from its trades (trade_bar_1m) for "
            f"every minute both hold over the last {LOOKBACK.days} days; each difference named."
        ),
        blocking=False,
    )
    def _check(
        database: DatabaseResource, worker_config: WorkerConfigResource
    ) -> dg.AssetCheckResult:
        now = datetime.now(UTC)
        start = now - LOOKBACK
        settings = worker_config.resolve(asset).settings
        klines, bars = read_minutes(database.data_engine(settings.database_url), start, now)
        return judge(klines, bars, start)

    return _check
