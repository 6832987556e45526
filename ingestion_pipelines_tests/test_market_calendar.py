"""The Vietnamese market calendar: trading days against the exchanges' published schedules,
sessions in ICT, and publication deadlines."""

from datetime import UTC, date, datetime, timedelta

import pytest

from ingestion_pipelines.vnmarket import calendar as mc
from ingestion_pipelines.vnmarket.calendar import ICT, Exchange


def ict(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ICT)


# Closed weekdays as the exchanges announced them (SSC / HOSE / HNX / VSD notices).
ANNOUNCED_CLOSURES = {
    # HOSE 2014 notice of 2013-12-20: Tết Tue 28 January to Wed 5 February, 9 Apr, 30 Apr-2 May,
    # 1-2 September.
    2014: ["2014-01-01", "2014-01-28", "2014-01-29", "2014-01-30", "2014-01-31", "2014-02-03",
           "2014-02-04", "2014-02-05", "2014-04-09", "2014-04-30", "2014-05-01", "2014-05-02",
           "2014-09-01", "2014-09-02"],
    # HOSE/HNX 2015: Tết from Wed 18 to Tue 24 February (23 and 24 compensate the weekend).
    2015: ["2015-01-01", "2015-02-18", "2015-02-19", "2015-02-20", "2015-02-23", "2015-02-24",
           "2015-04-28", "2015-04-30", "2015-05-01", "2015-09-02"],
    # VSD notice for 2019: 31/12/2018 swapped, Tết 4-8 Feb, 15 Apr, 29 Apr-1 May, 2 Sep.
    2019: ["2019-01-01", "2019-02-04", "2019-02-05", "2019-02-06", "2019-02-07", "2019-02-08",
           "2019-04-15", "2019-04-29", "2019-04-30", "2019-05-01", "2019-09-02"],
    # HOSE 2020 list.
    2020: ["2020-01-01", "2020-01-23", "2020-01-24", "2020-01-27", "2020-01-28", "2020-01-29",
           "2020-04-02", "2020-04-30", "2020-05-01", "2020-09-02"],
    # HOSE 2022 schedule (11 days): 3 Jan, Tết 31 Jan-4 Feb, 11 Apr, 2-3 May, 1-2 Sep.
    2022: ["2022-01-03", "2022-01-31", "2022-02-01", "2022-02-02", "2022-02-03", "2022-02-04",
           "2022-04-11", "2022-05-02", "2022-05-03", "2022-09-01", "2022-09-02"],
    # HOSE 2023 list (11 days).
    2023: ["2023-01-02", "2023-01-20", "2023-01-23", "2023-01-24", "2023-01-25", "2023-01-26",
           "2023-05-01", "2023-05-02", "2023-05-03", "2023-09-01", "2023-09-04"],
    # HOSE notice 1943/TB-SGDHCM and the SSC's swap of 29 April (no session on Sat 4 May).
    2024: ["2024-01-01", "2024-02-08", "2024-02-09", "2024-02-12", "2024-02-13", "2024-02-14",
           "2024-04-18", "2024-04-29", "2024-04-30", "2024-05-01", "2024-09-02", "2024-09-03"],
    # HOSE 2026 schedule (12 days, the 31 August swap day included; no session on Sat 22 Aug),
    # and 24 November, Vietnamese Culture Day, made a public holiday after that schedule.
    2026: ["2026-01-01", "2026-02-16", "2026-02-17", "2026-02-18", "2026-02-19", "2026-02-20",
           "2026-04-27", "2026-04-30", "2026-05-01", "2026-08-31", "2026-09-01", "2026-09-02",
           "2026-11-24"],
}  # fmt: skip

# Single dates of the years whose full schedule was not found (see market_calendar_review.csv):
# what was confirmed, and the Labour Code's days the library gives where nothing was found.
SPOT_CHECKS = [
    ("2000-07-27", False, "before HOSTC's first session"),
    ("2000-07-28", True, "HOSTC's first session, VN-Index 100"),
    ("2010-02-19", False, "SSC letter 1624/UBCK-PTTT: the 6th day of Tết closed"),
    ("2010-09-03", True, "the same letter: the Friday after National Day refused"),
    ("2011-01-31", False, "SSC notice: Tết 2011 closure from Monday 31 January"),
    ("2011-02-01", False, "the same notice (a civil-service swap day)"),
    ("2011-02-07", False, "the same notice: to Monday 7 February"),
    ("2011-02-08", True, "the same notice: trading resumes"),
    ("2016-02-08", False, "HNX/HOSE: Tết closure Monday 8 to Friday 12 February 2016"),
    ("2016-02-12", False, "the same notice"),
    ("2016-02-15", True, "the same notice: first session of the year of the Monkey"),
    ("2016-05-02", False, "Labour Code: 30 April fell on a Saturday, observed on Monday"),
    ("2017-01-02", False, "Labour Code: 1 January fell on a Sunday"),
    ("2017-01-26", False, "Labour Code: Tết 2017 from the 29th of the last lunar month"),
    ("2017-02-02", True, "Labour Code: after five Tết weekdays"),
    ("2017-09-04", False, "Labour Code: 2 September fell on a Saturday"),
    ("2018-01-01", False, "VSD notice of 2017-12-27"),
    ("2018-02-20", False, "Labour Code: Tết 2018 ends on Tuesday 20 February"),
    ("2018-02-21", True, "Labour Code"),
    ("2018-12-31", False, "VSD 2019 schedule: swap day taken by the market"),
    ("2021-01-01", False, "VSD notice of 2020-12-29"),
    ("2021-02-16", False, "government 2021 schedule: Tết 10-16 February"),
    ("2021-02-17", True, "the same schedule"),
    ("2021-09-03", False, "Labour Code 2019: the day after 2 September"),
    ("2025-01-27", False, "Labour Code: Tết 2025 from the 28th of the last lunar month"),
    ("2025-02-03", True, "Labour Code: after Tết"),
    ("2025-04-07", False, "government schedule: Hùng Kings' day on Monday 7 April"),
    ("2025-05-02", False, "government schedule: swap day (worked on Saturday 26 April)"),
    ("2025-04-26", False, "a make-up Saturday is never a session"),
    ("2025-09-01", False, "Labour Code 2019: the day before 2 September"),
    ("2026-01-02", True, "HNX: normal trading from Friday 2 January 2026"),
    ("2026-02-23", True, "HNX: trading resumes on Monday 23 February 2026"),
    ("2026-08-22", False, "HOSE: no session on the make-up Saturday"),
    ("2027-01-01", False, "Labour Code (the 2027 schedule is not announced yet)"),
    ("2027-02-05", False, "Labour Code: Tết 2027, lunar new year's eve"),
    ("2027-02-11", True, "Labour Code: after five Tết weekdays"),
    ("2027-04-16", False, "Labour Code: Hùng Kings' day"),
    ("2027-05-03", False, "Labour Code: 1 May fell on a Saturday"),
    ("2027-09-03", False, "Labour Code 2019: the day after 2 September"),
]


@pytest.mark.parametrize("year", sorted(ANNOUNCED_CLOSURES))
def test_closed_weekdays_match_the_exchanges_announcements(year):
    start, end = date(year, 1, 1), date(year + 1, 1, 1)
    closed_weekdays = [d.isoformat() for d in mc.non_trading_days(start, end) if d.weekday() < 5]
    assert closed_weekdays == ANNOUNCED_CLOSURES[year]


@pytest.mark.parametrize(("day", "trading", "source"), SPOT_CHECKS)
def test_single_dates_of_the_other_years(day, trading, source):
    assert mc.is_trading_day(date.fromisoformat(day)) is trading, source


def test_every_year_of_the_calendar_says_how_it_was_reviewed():
    reviews = mc.reviews()
    assert sorted(reviews) == list(mc.REVIEWED_YEARS)
    for review in reviews.values():
        assert review.verdict in mc.REVIEW_VERDICTS
        assert review.checked.strip() and review.source.strip()
        if review.verdict == "not_found":
            assert "searched" in review.source or "not announced" in review.checked
    # Every year whose closures are all asserted above is marked confirmed, and back.
    confirmed = {year for year, r in reviews.items() if r.verdict == "confirmed"}
    assert confirmed == set(ANNOUNCED_CLOSURES)


def test_weekends_and_make_up_saturdays_never_trade():
    assert mc.closure(date(2026, 11, 28)) == "Saturday"
    assert mc.closure(date(2026, 11, 29)) == "Sunday"
    # 4 May 2024 was a make-up working day for civil servants; the exchanges did not trade.
    assert not mc.is_trading_day(date(2024, 5, 4))
    assert mc.is_trading_day(date(2026, 11, 30))


def test_reviewed_table_rows_all_have_a_source_and_are_in_the_reviewed_years():
    rows = mc.overrides()
    assert rows, "the reviewed table is empty"
    for row in rows.values():
        assert row.source.strip() and row.reason.strip()
        assert row.day.year in mc.REVIEWED_YEARS
    # An exchange-only closure the holidays library does not know:
    assert mc.closure(date(2015, 2, 24)).startswith("Tet")
    # A civil-service swap day on which the exchanges traded:
    assert mc.is_trading_day(date(2015, 2, 16))


def test_every_reviewed_year_has_about_250_trading_days():
    for year in mc.REVIEWED_YEARS[1:]:
        count = sum(1 for _ in mc.trading_days(date(year, 1, 1), date(year + 1, 1, 1)))
        assert 240 <= count <= 254, (year, count)
    # 2000 from the first session: 111 weekdays, 2 September on a Saturday observed on Monday
    assert sum(1 for _ in mc.trading_days(mc.history_start(), date(2001, 1, 1))) == 110


def test_the_history_starts_at_the_first_session_and_each_index_at_its_own():
    from ingestion_pipelines.sources.base import TradingDayPartitions
    from ingestion_pipelines.sources.factory import trading_day_partitions_def
    from ingestion_pipelines.vnmarket.index_history import index_history_start

    assert mc.history_start() == date(2000, 7, 28) == index_history_start("VNINDEX")
    assert index_history_start("UPCOMINDEX") == date(2009, 6, 24)
    assert index_history_start("HNX30") < index_history_start("VN30") == date(2012, 2, 6)
    with pytest.raises(ValueError, match="VN100"):
        index_history_start("VN100")
    keys = trading_day_partitions_def(TradingDayPartitions("2000-07-28")).get_partition_keys()
    assert keys[:3] == ["2000-07-28", "2000-07-31", "2000-08-01"]
    assert "2011-01-31" not in keys and "2014-02-05" not in keys and "2010-09-03" in keys
    with pytest.raises(ValueError, match="before the market's first session"):
        trading_day_partitions_def(TradingDayPartitions("2000-07-27"))


def test_the_cached_holidays_are_the_librarys():
    # Regenerate after a `holidays` upgrade: mc.write_holiday_cache(<the package's file>)
    for year in mc.REVIEWED_YEARS:
        assert mc._cached_holidays()[year] == mc.library_holidays(year), year


def test_next_and_previous_trading_day_skip_tet():
    assert mc.next_trading_day(date(2026, 2, 13)) == date(2026, 2, 23)
    assert mc.previous_trading_day(date(2026, 2, 23)) == date(2026, 2, 13)


def test_hose_sessions_and_phases():
    day = date(2026, 11, 30)
    morning, afternoon = mc.sessions(day, Exchange.HOSE)
    assert (morning.start, morning.end) == (ict("2026-11-30 09:00"), ict("2026-11-30 11:30"))
    assert (afternoon.start, afternoon.end) == (ict("2026-11-30 13:00"), ict("2026-11-30 14:45"))
    assert mc.phase_at(ict("2026-11-30 09:10")).name == "opening_auction"
    assert mc.phase_at(ict("2026-11-30 10:00")).name == "morning"
    assert mc.phase_at(ict("2026-11-30 12:00")) is None
    assert mc.phase_at(ict("2026-11-30 14:40")).name == "closing_auction"
    assert mc.phase_at(ict("2026-11-30 14:45")) is None
    assert mc.sessions(date(2026, 2, 17)) == []


def test_other_boards_sessions():
    assert mc.sessions(date(2026, 11, 30), Exchange.UPCOM)[1].end == ict("2026-11-30 15:00")
    assert mc.sessions(date(2026, 11, 30), Exchange.HNX)[1].end == ict("2026-11-30 15:00")
    assert mc.sessions(date(2026, 11, 30), Exchange.DERIVATIVES)[0].start == ict("2026-11-30 08:45")


@pytest.mark.parametrize(
    ("moment", "open_", "reason"),
    [
        ("2026-11-30 10:00", True, "HOSE trading (morning)"),
        ("2026-11-30 12:00", False, "lunch break"),
        ("2026-11-30 08:00", False, "before the opening"),
        ("2026-11-30 20:00", False, "after the close"),
        ("2026-11-28 10:00", False, "2026-11-28 is not a trading day (Saturday)"),
        ("2026-02-17 10:00", False, "2026-02-17 is not a trading day (Lunar New Year)"),
    ],
)
def test_market_state_says_why_silence_is_expected(moment, open_, reason):
    state = mc.market_state(ict(moment))
    assert (state.open, state.reason) == (open_, reason)
    assert state.silence_expected is not open_


def test_next_open_after_tet_and_after_lunch():
    assert mc.market_state(ict("2026-02-13 15:00")).next_open == ict("2026-02-23 09:00")
    assert mc.market_state(ict("2026-11-30 12:00")).next_open == ict("2026-11-30 13:00")
    # Given in UTC, answered the same.
    utc = ict("2026-11-30 12:00").astimezone(UTC)
    assert mc.market_state(utc).next_open == ict("2026-11-30 13:00")


def test_nav_is_due_the_next_trading_days_evening():
    rule = mc.deadline("fmarket_nav")
    assert rule.due_at(date(2026, 11, 27)) == ict("2026-11-30 18:00")  # Friday -> Monday
    assert rule.due_at(date(2026, 2, 13)) == ict("2026-02-23 18:00")  # across Tết
    assert rule.due_at(date(2026, 11, 28)) is None  # Saturday: no NAV expected


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        ("2026-11-30 18:45", "2026-11-27"),  # Monday evening: Friday's NAV
        ("2026-11-30 17:59", "2026-11-26"),  # before the deadline: Thursday's
        ("2026-11-28 18:45", "2026-11-26"),  # Saturday: Friday's is not due until Monday
        ("2026-02-20 18:45", "2026-02-12"),  # Tết: the last NAV due is the 12th's
    ],
)
def test_latest_due_day(moment, day):
    assert mc.latest_due_day("fmarket_nav", ict(moment)) == date.fromisoformat(day)


def test_expectation_of_a_window():
    at = ict("2026-11-30 19:00")
    weekend = mc.expectation("fmarket_nav", date(2026, 11, 28), date(2026, 11, 30), at)
    assert not weekend.rows_required
    assert "2026-11-28 (Saturday)" in weekend.explain()
    week = mc.expectation("fmarket_nav", date(2026, 11, 23), date(2026, 12, 1), at)
    # 24 November is Vietnam Cultural Day, a public holiday from 2026.
    assert week.due_days == tuple(date(2026, 11, d) for d in (23, 25, 26, 27))
    assert date(2026, 11, 24) in week.closed_days
    assert week.pending_days == (date(2026, 11, 30),)
    assert week.rows_required


def test_the_package_ships_the_table():
    from importlib import resources

    assert resources.files("ingestion_pipelines.vnmarket").joinpath(mc.OVERRIDES_FILE).is_file()
    assert timedelta(days=mc._SEARCH_LIMIT_DAYS) > timedelta(days=11)


def test_status_for_a_market_feed_and_a_dataset_with_a_deadline():
    from ingestion_pipelines.control.render import market_line

    now = ict("2026-11-30 12:00")
    feed = mc.status_for("ssi_iboard", now)
    assert feed["silence_expected"] and feed["reason"] == "lunch break"
    assert feed["next_session"] == ict("2026-11-30 13:00").isoformat()
    assert "closed, silence expected (lunch break)" in market_line(feed, now)
    nav = mc.status_for("fmarket_nav", now)
    assert nav["latest_due_day"] == "2026-11-26"
    assert market_line(nav, now) == "latest day due 2026-11-26"
    assert mc.status_for("binance_trades", now) is None
    monday = ict("2026-11-30 09:30")
    bars = mc.status_for("ssi_trade_bars_1m", monday)
    assert bars["open"] and bars["latest_complete_day"] == "2026-11-27"  # Friday's partition
    assert "latest complete trading day 2026-11-27" in market_line(bars, monday)


def test_a_yaml_source_declares_its_deadline_in_its_own_folder():
    from datetime import time as clock

    from ingestion_pipelines.vnmarket import calendar

    rule = calendar.deadline("vn_indices")
    assert (rule.trading_days_after, rule.at) == (0, clock(17, 0))
    assert "index levels" in rule.description
    assert "vn_indices" not in calendar.DEADLINES  # declared in defs/vn_indices, nowhere else
    assert calendar.deadline("fear_greed") is None
