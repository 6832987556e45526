"""Expected values of the workers declared with the NAV hook for the standard tests (the fund
list's are in its defs.yaml)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from ingestion_pipelines.sources.declared_family import hooked_sources
from ingestion_pipelines.sources.fmarket.nav import NavHistory
from ingestion_pipelines.sources.fmarket.replay import previous_weekday
from ingestion_pipelines.sources.testing import Standard


def nav_day(dataset) -> str:
    """A weekday whose NAV every fund has published."""
    latest = min(d for f in dataset.specs if (d := dataset.latest_nav_date(f)))
    return previous_weekday(latest - timedelta(days=1)).isoformat()


def _exact(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def check_nav(source):
    """A check that the worker stored the NAV of every fund on the partition's day, exactly."""

    def check(crawler, partition) -> None:
        day = date.fromisoformat(partition)
        dataset = crawler.server.dataset
        expected = {f: _exact(v) for f in dataset.specs if (v := dataset.nav(f, day)) is not None}
        rows = crawler.rows(source.table)
        stored = {r["fund_id"]: r["nav"] for r in rows if r["nav_date"] == day}
        assert stored == expected and len(expected) > 40

    return check


def break_nav(dataset, partition) -> None:
    """One NAV row of the day that is not a number."""
    fund_id = next(iter(dataset.specs))
    dataset.nav_overrides[(fund_id, date.fromisoformat(partition))] = {"nav": "not-a-number"}


STANDARD = {
    worker_id: Standard(
        check_nav(source), break_nav, "/res/product/get-nav-history", partition=nav_day
    )
    for worker_id, source in hooked_sources(NavHistory).items()
}
