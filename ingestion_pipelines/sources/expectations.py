"""What a scheduled source's partitions should hold, by the market calendar: which partition a
schedule tick collects and whether an empty window is a failure or expected silence.

Dagster-free: the factory turns these verdicts into schedule run requests and check results.
A worker with a publication deadline (`market_calendar.deadline`: `partitions.deadline` in its
defs.yaml, such as `fmarket_nav`'s; `DEADLINES` for a Python worker) is judged by it; any
other worker needs rows in whatever its run covered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ingestion_pipelines.sources.base import Window
from ingestion_pipelines.vnmarket import calendar as market_calendar


@dataclass(frozen=True)
class RowsVerdict:
    """The outcome of `rows_present` for one run."""

    passed: bool
    description: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


def scheduled_partition(worker_id: str, timezone: str, when: datetime) -> str:
    """The partition a schedule tick at `when` collects: for a worker with a publication
    deadline, the latest trading day whose data is due; otherwise that day in `timezone`."""
    if market_calendar.deadline(worker_id) is not None:
        return market_calendar.latest_due_day(worker_id, when).isoformat()
    return when.astimezone(ZoneInfo(timezone)).date().isoformat()


def judge_rows(
    worker_id: str, table: str, window: Window | None, rows: int, now: datetime
) -> RowsVerdict:
    """`rows_present`: rows are required unless every day of the window is a non-trading day or
    not due yet (for a worker with a publication deadline); the description says why."""
    rule = market_calendar.deadline(worker_id)
    if rule is None or window is None:
        return RowsVerdict(rows > 0, None if rows else f"no rows in {table}", {"rows": rows})
    expected = market_calendar.expectation(worker_id, window.start, window.end, now)
    metadata: dict[str, Any] = {
        "rows": rows,
        "trading_days_due": len(expected.due_days),
        "trading_days_not_due": len(expected.pending_days),
        "non_trading_days": len(expected.closed_days),
    }
    explained = expected.explain()
    if rows > 0:
        return RowsVerdict(True, f"{rows} rows in {table}; {explained}", metadata)
    if not expected.rows_required:
        return RowsVerdict(True, f"no rows in {table}, none expected: {explained}", metadata)
    first_due = expected.due_days[0]
    return RowsVerdict(
        False,
        f"no rows in {table} for trading day(s) past their deadline "
        f"({', '.join(map(str, expected.due_days[:5]))}; {rule.description}: "
        f"{first_due} was due {rule.due_at(first_due):%Y-%m-%d %H:%M} ICT)",
        metadata,
    )
