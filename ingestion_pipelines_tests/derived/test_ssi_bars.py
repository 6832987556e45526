"""`ssi_trade_bars_1m`: the Vietnamese market's bars on trading-day partitions (issue 9 item 5):
no partition on weekends or holidays, each partition its own ICT day, only the market's
sources, and automation that does not run a Friday again all weekend."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pytest
from sqlalchemy import select

from ingestion_pipelines.config.workers import catalogue
from ingestion_pipelines.derived import defs as derived_defs
from ingestion_pipelines.derived.ssi_bars import (
    SSI_WORKER_ID,
    longest_gap,
    ssi_trade_bars_asset,
    trading_day_partitions_def,
)
from ingestion_pipelines.derived.trade_bars import LIVE_BARS_CHECK, partition_windows
from ingestion_pipelines.feeds import defs as feed_defs
from ingestion_pipelines.resources.database import DatabaseResource
from ingestion_pipelines.resources.worker_config import WorkerConfigResource
from ingestion_pipelines.sources.base import TradingDayPartitions
from ingestion_pipelines.sources.factory import trading_day_partitions_def as eod_partitions_def
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import trade_bar_1m, trade_tick
from ingestion_pipelines.storage.upsert import upsert
from ingestion_pipelines.vnmarket import calendar as market_calendar

ICT = market_calendar.ICT
SSI_BARS = dg.AssetKey([SSI_WORKER_ID])


def ict(*args) -> datetime:
    return datetime(*args, tzinfo=ICT)


def tick(trade_id, at, price, qty="100", *, source="ssi", symbol="FPT") -> dict:
    return {
        "source": source,
        "symbol": symbol,
        "trade_id": trade_id,
        "price": Decimal(price),
        "quantity": Decimal(qty),
        "side": "buy",
        "traded_at": at.astimezone(UTC),
        "received_at": at.astimezone(UTC),
    }


def _resources(url: str) -> dict:
    return {
        "worker_config": WorkerConfigResource(database_url=url),
        "database": DatabaseResource(url=url),
    }


def test_partitions_are_the_trading_days_and_nothing_else():
    parts = trading_day_partitions_def()
    now = ict(2026, 11, 30, 12, 0)  # Monday, lunch break
    keys = parts.get_partition_keys(current_time=now)
    # The same trading days as vn_stock_eod's partitions over the same span.
    eod = eod_partitions_def(TradingDayPartitions(start="2015-01-05"))
    eod_keys = [k for k in eod.get_partition_keys(current_time=now) if k >= keys[0]]
    assert keys == [k for k in eod_keys if k < "2026-11-30"]
    assert keys[0] == "2025-01-02"  # 1 January 2025 was a holiday
    assert keys[-1] == "2026-11-27"  # today (Monday) is not complete; the weekend has none
    for closed in ("2026-11-28", "2026-11-29", "2026-11-24", "2026-02-16", "2026-02-20"):
        assert closed not in keys, closed
    assert all(market_calendar.is_trading_day(date.fromisoformat(k)) for k in keys)
    assert len(keys) == sum(
        1 for _ in market_calendar.trading_days(date(2025, 1, 1), date(2026, 11, 30))
    )
    # Each partition is its own ICT day: Friday's window ends on Saturday 00:00, not Monday.
    friday = parts.time_window_for_partition_key("2026-11-27")
    assert (friday.start, friday.end) == (ict(2026, 11, 27), ict(2026, 11, 28))


def test_a_week_of_trading_days_is_one_window_per_stretch_between_closed_days():
    windows = partition_windows(
        trading_day_partitions_def(),
        ["2026-11-27", "2026-11-23", "2026-11-25", "2026-11-26", "2026-11-30"],
    )
    utc = [(a.astimezone(ICT), b.astimezone(ICT)) for a, b in windows]
    assert utc == [
        (ict(2026, 11, 23), ict(2026, 11, 24)),  # the 24th is Vietnam Cultural Day
        (ict(2026, 11, 25), ict(2026, 11, 28)),
        (ict(2026, 11, 30), ict(2026, 12, 1)),
    ]


def test_registered_with_the_same_settings_as_trade_bars_1m():
    spec = catalogue()[SSI_WORKER_ID]
    assert spec.kind == "derived"
    assert spec.settings is catalogue()["trade_bars_1m"].settings


def test_freshness_allows_the_longest_closure():
    # Tết 2026: trading on Friday 13 February, again on Monday 23 February.
    assert longest_gap() >= timedelta(days=10)
    policy = ssi_trade_bars_asset().specs_by_key[SSI_BARS].freshness_policy
    assert policy.fail_window.to_timedelta() > longest_gap()


# A week around the 24 November 2026 holiday: SSI trades on trading days, one stray tick on the
# holiday and one on Saturday (wrongly stamped), and a Binance trade that is not SSI's.
WEEK = [
    tick(1, ict(2026, 11, 23, 9, 15, 3), "120.5"),
    tick(2, ict(2026, 11, 23, 9, 15, 40), "121", "300"),
    tick(3, ict(2026, 11, 24, 10, 0), "99"),  # holiday: no partition
    tick(4, ict(2026, 11, 27, 14, 44, 59), "122"),
    tick(5, ict(2026, 11, 28, 10, 0), "98"),  # Saturday: no partition
    tick(6, ict(2026, 11, 27, 10, 0), "65000", "0.5", source="binance", symbol="BTCUSDT"),
]


def _materialize(url: str, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize([ssi_trade_bars_asset()], resources=_resources(url), **kwargs)


def _stored(url: str) -> dict[tuple, tuple]:
    with ensure_schema(url).connect() as conn:
        rows = conn.execute(select(trade_bar_1m)).mappings().all()
    return {
        (r["source"], r["symbol"], r["bar_start"].replace(tzinfo=None)): (
            Decimal(str(r["open"])),
            Decimal(str(r["close"])),
            Decimal(str(r["volume"])),
            r["trade_count"],
        )
        for r in rows
    }


def test_a_range_of_trading_days_covers_only_them_and_only_ssi(database_url):
    upsert(ensure_schema(database_url), trade_tick, WEEK)
    result = _materialize(
        database_url,
        tags={
            "dagster/asset_partition_range_start": "2026-11-23",
            "dagster/asset_partition_range_end": "2026-11-27",
        },
    )
    assert result.success
    materialized = {m.partition for m in result.asset_materializations_for_node(SSI_WORKER_ID)}
    assert materialized == {"2026-11-23", "2026-11-25", "2026-11-26", "2026-11-27"}
    meta = {
        k: v.value
        for k, v in result.asset_materializations_for_node(SSI_WORKER_ID)[0].metadata.items()
    }
    assert (meta["trades_read"], meta["bars_inserted"], meta["days"]) == (3, 2, 4)
    minute = lambda *a: ict(*a).astimezone(UTC).replace(tzinfo=None)  # noqa: E731
    assert _stored(database_url) == {
        ("ssi", "FPT", minute(2026, 11, 23, 9, 15)): (
            Decimal("120.5"),
            Decimal("121"),
            Decimal("400"),
            2,
        ),
        ("ssi", "FPT", minute(2026, 11, 27, 14, 44)): (
            Decimal("122"),
            Decimal("122"),
            Decimal("100"),
            1,
        ),
    }
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == LIVE_BARS_CHECK and not check.passed  # nothing was live
    again = _materialize(database_url, partition_key="2026-11-27")
    [check] = again.get_asset_check_evaluations()
    assert check.passed


def test_a_closed_day_cannot_be_materialized(sqlite_url):
    for closed in ("2026-11-24", "2026-11-28"):
        with pytest.raises(dg.DagsterUnknownPartitionError, match=closed):
            _materialize(sqlite_url, partition_key=closed)


def _defs() -> dg.Definitions:
    return dg.Definitions.merge(
        feed_defs.defs(), derived_defs.defs(), dg.Definitions(resources=_resources("sqlite://"))
    )


def test_automation_requests_each_trading_day_once_and_no_closed_day():
    defs = _defs()
    instance = dg.DagsterInstance.ephemeral()
    cursor = None

    def tick_at(*ict_time) -> set:
        nonlocal cursor
        result = dg.evaluate_automation_conditions(
            defs=defs,
            instance=instance,
            asset_selection=dg.AssetSelection.assets(SSI_BARS),
            evaluation_time=ict(*ict_time),
            cursor=cursor,
        )
        cursor = result.cursor
        return set(result.get_requested_partitions(SSI_BARS))

    def report(day: str) -> None:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=dg.AssetKey(["ssi_iboard"]), partition=day)
        )

    def materialized(day: str) -> None:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=SSI_BARS, partition=day)
        )

    report("2026-11-27")  # the feed traded on Friday
    assert tick_at(2026, 11, 27, 23, 0) == set()  # Friday is not over
    assert tick_at(2026, 11, 28, 0, 6) == {"2026-11-27"}
    materialized("2026-11-27")
    report("2026-11-28")  # a (wrongly stamped) Saturday frame: Saturday has no partition
    assert tick_at(2026, 11, 28, 0, 30) == set()
    assert tick_at(2026, 11, 29, 0, 6) == set()  # Sunday 00:05: Friday is done, not run again
    assert tick_at(2026, 11, 30, 0, 6) == set()  # Monday 00:05: Monday is not over
    report("2026-11-30")
    assert tick_at(2026, 12, 1, 0, 6) == {"2026-11-30"}


def test_the_market_calendar_check_is_on_the_ssi_asset():
    graph = _defs().resolve_asset_graph()
    checks = {key.name for key in graph.get_check_keys_for_assets({SSI_BARS})}
    assert checks == {LIVE_BARS_CHECK, "market_calendar"}
    binance = graph.get_check_keys_for_assets({dg.AssetKey(["trade_bars_1m"])})
    assert {key.name for key in binance} == {LIVE_BARS_CHECK}
