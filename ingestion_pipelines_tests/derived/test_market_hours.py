"""The `market_calendar` check of `ssi_trade_bars_1m`: the SSI symbols' bars exist only on trading
days and in trading hours over the last complete ICT days."""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import dagster as dg

from ingestion_pipelines.derived.market_hours import (
    CHECK_NAME,
    judge_market_bars,
    market_bars_check,
)
from ingestion_pipelines.derived.ssi_bars import ssi_trade_bars_asset
from ingestion_pipelines.resources.database import DatabaseResource
from ingestion_pipelines.resources.worker_config import WorkerConfigResource
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import trade_bar_1m
from ingestion_pipelines.storage.upsert import upsert
from ingestion_pipelines.vnmarket import calendar as market_calendar

ICT = market_calendar.ICT


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), ICT)


def bar(source: str, start: datetime) -> dict:
    one = Decimal("1")
    return {
        "source": source,
        "symbol": "FPT" if source == "ssi" else "BTCUSDT",
        "bar_start": start.astimezone(UTC),
        "open": one,
        "high": one,
        "low": one,
        "close": one,
        "volume": one,
        "trade_count": 1,
    }


def test_bars_in_sessions_of_trading_days_pass():
    week = [at(date(2026, 11, d), 10) for d in (23, 25, 26, 27)]  # the 24th is a holiday
    verdict = judge_market_bars(week, date(2026, 11, 23), date(2026, 11, 30))
    assert verdict.passed
    assert verdict.metadata["trading_days_with_bars"] == verdict.metadata["trading_days"] == 4


def test_bars_on_a_holiday_or_at_night_fail_naming_them():
    bars = [at(date(2026, 11, 24), 10), at(date(2026, 11, 25), 16, 30)]
    verdict = judge_market_bars(bars, date(2026, 11, 23), date(2026, 11, 30))
    assert not verdict.passed
    assert "2026-11-24 (Vietnam Cultural Day: 1)" in verdict.description
    assert "outside 08:45-15:00 ICT: 2026-11-25: 1" in verdict.description


def evaluate(url: str) -> dg.AssetCheckEvaluation:
    result = dg.materialize(
        [ssi_trade_bars_asset(), market_bars_check()],
        selection=dg.AssetSelection.checks(
            dg.AssetCheckKey(ssi_trade_bars_asset().key, CHECK_NAME)
        ),
        resources={
            "worker_config": WorkerConfigResource(database_url=url),
            "database": DatabaseResource(url=url),
        },
    )
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_the_check_reads_the_table_and_ignores_binance_and_today(sqlite_url):
    today = datetime.now(ICT).date()
    last_trading = market_calendar.previous_trading_day(today)
    last_closed = next(
        today - timedelta(days=i)
        for i in range(1, 8)
        if not market_calendar.is_trading_day(today - timedelta(days=i))
    )
    engine = ensure_schema(sqlite_url)
    rows = [
        bar("ssi", at(last_trading, 10)),
        bar("binance", at(last_closed, 3)),  # crypto trades every day and night
        bar("ssi", at(today, 22)),  # today is not complete: not judged
    ]
    upsert(engine, trade_bar_1m, rows)
    assert evaluate(sqlite_url).passed
    upsert(engine, trade_bar_1m, [bar("ssi", at(last_closed, 10))])
    failed = evaluate(sqlite_url)
    assert not failed.passed and str(last_closed) in failed.description
