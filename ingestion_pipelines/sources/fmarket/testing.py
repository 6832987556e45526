"""Expected values of `fmarket_nav` for the standard tests (the fund list's are in its defs.yaml)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from ingestion_pipelines.sources.fmarket.replay import previous_weekday
from ingestion_pipelines.sources.testing import Standard
from ingestion_pipelines.storage import tables


def nav_day(dataset) -> str:
    """A weekday whose NAV every fund has published."""
    latest = min(d for f in dataset.specs if (d := dataset.latest_nav_date(f)))
    return previous_weekday(latest - timedelta(days=1)).isoformat()


def _exact(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def check_nav(crawler, partition) -> None:
    """The NAV of every fund on the partition's day, exactly."""
    day = date.fromisoformat(partition)
    dataset = crawler.server.dataset
    expected = {f: _exact(v) for f in dataset.specs if (v := dataset.nav(f, day)) is not None}
    stored = {r["fund_id"]: r["nav"] for r in crawler.rows(tables.fund_nav) if r["nav_date"] == day}
    assert stored == expected and len(expected) > 40


def break_nav(dataset, partition) -> None:
    """One NAV row of the day that is not a number."""
    fund_id = next(iter(dataset.specs))
    dataset.nav_overrides[(fund_id, date.fromisoformat(partition))] = {"nav": "not-a-number"}


STANDARD = {
    "fmarket_nav": Standard(
        check_nav, break_nav, "/res/product/get-nav-history", partition=nav_day
    ),
}
