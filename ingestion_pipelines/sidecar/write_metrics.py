"""What the writer committed, per feed: rows, trades, dead letters, spooled rows, lag, and the
trades of each ICT day (read by the state and report threads)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ingestion_pipelines.core.timezones import ICT_UTC_OFFSET_S
from ingestion_pipelines.storage.table_policy import policy_of


@functools.cache
def _ict_day(day_number: int) -> str:
    """ "YYYY-MM-DD" of the ICT day `day_number` days after 1970-01-01."""
    return (date(1970, 1, 1) + timedelta(days=day_number)).isoformat()


@dataclass
class DayStats:
    """Rows and trades written for one ICT day, with the first and last trade times."""

    rows: int = 0
    trades: int = 0
    first_trade_at: datetime | None = None
    last_trade_at: datetime | None = None


@dataclass
class WriteMetrics:
    """What the writer committed for one feed (read by the state and report threads)."""

    rows_written: int = 0
    trades_written: int = 0
    dead_letters: int = 0
    dead_letters_lost: int = 0
    spooled_rows: int = 0
    dropped_not_owner: int = 0
    last_commit_at: datetime | None = None
    last_trade_at: datetime | None = None
    lag_s: float | None = None
    last_error: str | None = None
    days: dict[str, DayStats] = field(default_factory=dict)


def account(m: WriteMetrics, table: str, rows: list[dict[str, Any]], committed: float) -> None:
    """Count rows of `table` committed at `committed` (epoch s) in the feed's metrics `m`."""
    m.rows_written += len(rows)
    m.last_commit_at = datetime.fromtimestamp(committed, UTC)
    if table == "dead_letter":
        m.dead_letters += len(rows)
        return
    if not policy_of(table).trades:
        return
    m.trades_written += len(rows)
    # per ICT day: the day's number from the epoch time (astimezone/strftime per row would
    # cost more than the rest of this method)
    by_day: dict[int, list[datetime]] = {}
    for row in rows:
        traded_at = row["traded_at"]
        day_number = int(traded_at.timestamp() + ICT_UTC_OFFSET_S) // 86400
        times = by_day.get(day_number)
        if times is None:
            by_day[day_number] = [traded_at]
        else:
            times.append(traded_at)
    for day_number, times in by_day.items():
        key = _ict_day(day_number)
        day = m.days.get(key)
        if day is None:
            day = m.days[key] = DayStats()
        day.trades += len(times)
        first, last = min(times), max(times)
        if day.first_trade_at is None or first < day.first_trade_at:
            day.first_trade_at = first
        if day.last_trade_at is None or last > day.last_trade_at:
            day.last_trade_at = last
    last = max(r["traded_at"] for r in rows)
    if m.last_trade_at is None or last > m.last_trade_at:
        m.last_trade_at = last
    m.lag_s = max(0.0, committed - rows[-1]["received_at"].timestamp())
