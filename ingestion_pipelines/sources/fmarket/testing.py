"""Expected values of the fmarket workers for the standard tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
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


def _utc_ms(value) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if value else None


def check_funds(crawler, _partition) -> None:
    """Every fund served is stored with exactly its fields."""
    stored = {r["fund_id"]: r for r in crawler.rows(tables.fund)}
    served = crawler.server.dataset.funds
    assert len(stored) == len(served) == 58
    for row in served:
        got = stored[row["id"]]
        assert got["code"] == row["code"] and got["name"] == row["name"]
        assert got["issuer"] == row["owner"]["name"]
        assert got["asset_type"] == row["dataFundAssetType"]["code"]
        assert got["nav"] == _exact(row["nav"])
        # the time the NAV is for, and the time its figures were updated
        assert got["nav_updated_at"] == _utc_ms((row.get("extra") or {}).get("lastNAVDate"))
        update = (row.get("productNavChange") or {}).get("updateAt")
        assert got["figures_updated_at"] == _utc_ms(update)
        assert got["risk_level"] == row["riskLevel"]["name"]
        assert got["extra"]["productFeeList"][0]["id"] == row["productFeeList"][0]["id"]


def check_nav(crawler, partition) -> None:
    """The NAV of every fund on the partition's day, exactly."""
    day = date.fromisoformat(partition)
    dataset = crawler.server.dataset
    expected = {f: _exact(v) for f in dataset.specs if (v := dataset.nav(f, day)) is not None}
    stored = {r["fund_id"]: r["nav"] for r in crawler.rows(tables.fund_nav) if r["nav_date"] == day}
    assert stored == expected and len(expected) > 40


def break_fund(dataset, _partition) -> None:
    """One fund row with a NAV that is not a number."""
    funds = [dict(row) for row in dataset.funds]
    funds[5] = {**funds[5], "nav": "not-a-number"}
    dataset.funds = funds


def break_nav(dataset, partition) -> None:
    """One NAV row of the day that is not a number."""
    fund_id = next(iter(dataset.specs))
    dataset.nav_overrides[(fund_id, date.fromisoformat(partition))] = {"nav": "not-a-number"}


STANDARD = {
    "fmarket_funds": Standard(check_funds, break_fund, "/res/products/filter"),
    "fmarket_nav": Standard(
        check_nav, break_nav, "/res/product/get-nav-history", partition=nav_day
    ),
}
