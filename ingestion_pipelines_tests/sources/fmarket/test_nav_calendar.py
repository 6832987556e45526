"""`fmarket_nav` follows the market calendar: no NAV is expected on a non-trading day, a
trading day still empty after its deadline fails `rows_present`, and the schedule collects the
latest day whose NAV is due."""

from datetime import UTC, date, datetime, timedelta

from ingestion_pipelines.vnmarket import calendar as market_calendar
from ingestion_pipelines_tests.sources.test_sources import nav_day


def rows_present(crawl):
    (check,) = [
        c for c in crawl.result.get_asset_check_evaluations() if c.check_name == "rows_present"
    ]
    return check


def test_a_weekend_partition_passes_and_says_no_nav_is_expected(crawler):
    saturday = nav_day(crawler.server)
    while saturday.weekday() != 5:
        saturday -= timedelta(days=1)
    crawl = crawler.run("fmarket_nav", saturday.isoformat())
    check = rows_present(crawl)
    assert check.passed
    assert "none expected" in check.description and "Saturday" in check.description
    assert check.metadata["rows"].value == 0


def test_a_trading_day_empty_after_its_deadline_fails(crawler):
    day = market_calendar.previous_trading_day(date.today() - timedelta(days=7))
    crawler.server.dataset.funds = []  # the source publishes nothing
    crawl = crawler.run("fmarket_nav", day.isoformat())
    check = rows_present(crawl)
    assert not check.passed
    assert str(day) in check.description and "deadline" in check.description


def test_a_trading_day_not_due_yet_passes_while_empty(crawler):
    # The latest trading day up to today: its NAV is due on a later day's evening.
    today = datetime.now(UTC).astimezone(market_calendar.ICT).date()
    day = (
        today
        if market_calendar.is_trading_day(today)
        else market_calendar.previous_trading_day(today)
    )
    crawler.server.dataset.funds = []
    check = rows_present(crawler.run("fmarket_nav", day.isoformat()))
    assert check.passed and "not due yet" in check.description


def test_trading_day_partitions_have_no_weekend_or_holiday():
    from ingestion_pipelines.sources.base import TradingDayPartitions
    from ingestion_pipelines.sources.factory import trading_day_partitions_def

    parts = trading_day_partitions_def(TradingDayPartitions(start="2026-02-01"))
    keys = parts.get_partition_keys(current_time=datetime(2026, 3, 1, tzinfo=UTC))
    february = [k for k in keys if k.startswith("2026-02")]
    assert february[8:11] == ["2026-02-12", "2026-02-13", "2026-02-23"]  # Tết 16-20 Feb
    assert all(market_calendar.is_trading_day(date.fromisoformat(k)) for k in keys)
    assert len(keys) == sum(
        1 for _ in market_calendar.trading_days(date(2026, 2, 1), date(2026, 3, 1))
    )
