"""`binance_klines`: window templates in epoch milliseconds, one request per symbol of a settings
list (only those listed by the window's end), Binance's `startTime`/`endTime`/`limit` paging
followed by the last open time returned, and the klines the stand-in serves landing exactly."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from ingestion_pipelines.replay.klines import KlineSeries
from ingestion_pipelines.sources.base import Request, Window
from ingestion_pipelines.sources.declared import load_declared_sources
from ingestion_pipelines.sources.declared_render import _window_context
from ingestion_pipelines.sources.paginators import TimeCursor
from ingestion_pipelines.storage.declared import DEFS_ROOT

KLINES = load_declared_sources()["binance_klines"]
DAY_MS = 86_400_000
D2024_03_01 = 1_709_251_200_000  # 2024-03-01 00:00 UTC in epoch ms


def test_window_templates_in_epoch_milliseconds():
    utc = _window_context(Window(date(2024, 3, 1), date(2024, 3, 3), "UTC"))
    assert utc["start_ms"] == D2024_03_01
    assert utc["end_ms"] == D2024_03_01 + 2 * DAY_MS and utc["last_ms"] == utc["end_ms"] - 1
    ict = _window_context(Window(date(2024, 3, 1), date(2024, 3, 2), "Asia/Ho_Chi_Minh"))
    assert ict["start_ms"] == D2024_03_01 - 7 * 3_600_000  # midnight ICT is 17:00 UTC before


def test_one_request_per_symbol_listed_by_the_window_end():
    symbols = [
        {"symbol": "BTCUSDT", "listed": "2017-08-17"},
        {"symbol": "NEWUSDT", "listed": "2024-03-02"},  # listed after the window
        {"symbol": "OLDUSDT", "listed": "2018-01-01", "delisted": "2024-02-29"},  # before it
    ]
    settings = KLINES.Settings(symbols=symbols)
    requests = list(
        KLINES(settings, Window(date(2024, 3, 1), date(2024, 3, 2), "UTC")).build_requests()
    )
    (request,) = requests
    assert request.params == {
        "symbol": "BTCUSDT",
        "interval": "1m",
        "startTime": D2024_03_01,
        "endTime": D2024_03_01 + DAY_MS - 1,
        "limit": 1000,
    }
    assert request.meta["row"] == {"symbol": "BTCUSDT", "listed": "2017-08-17"}


def test_a_symbols_setting_that_is_not_a_list_of_mappings_is_refused():
    """Refused where the settings are read: the declared default, a list of mappings, types the
    setting (before a run could ask anything)."""
    with pytest.raises(ValidationError, match="valid dictionary"):
        KLINES.Settings(symbols=["BTCUSDT"])


def _cursor_request(start: int, end: int) -> Request:
    return Request("/klines", params={"startTime": start, "endTime": end, "limit": 1000})


def test_time_cursor_follows_the_last_open_time_returned():
    cursor = TimeCursor(step=60_000)
    end = D2024_03_01 + DAY_MS - 1
    page = KlineSeries(1, 0)(D2024_03_01, end, 700)  # a server returning 700 of the 1000 asked
    following = cursor.follow(_cursor_request(D2024_03_01, end), None, page, page)
    assert following.params["startTime"] == page[-1][0] + 60_000
    assert following.params["endTime"] == end and following.params["limit"] == 1000
    last = KlineSeries(1, 0)(D2024_03_01 + DAY_MS - 60_000, end, 1000)  # the day's last bar
    assert cursor.follow(_cursor_request(last[0][0], end), None, last, last) is None
    assert cursor.follow(_cursor_request(D2024_03_01, end), None, [], []) is None


def test_a_range_run_sends_each_day_on_its_own():
    settings = KLINES.Settings(symbols=[{"symbol": "BTCUSDT", "listed": "2017-08-17"}])
    window = Window(date(2024, 3, 1), date(2024, 3, 4), "UTC")
    requests = list(KLINES(settings, window).build_requests())
    assert [(r.params["startTime"], r.params["endTime"]) for r in requests] == [
        (D2024_03_01 + i * DAY_MS, D2024_03_01 + (i + 1) * DAY_MS - 1) for i in range(3)
    ]


def test_time_cursor_fails_when_the_server_does_not_move_forward():
    stale = KlineSeries(1, 0)(D2024_03_01, None, 3)
    request = _cursor_request(D2024_03_01 + DAY_MS, D2024_03_01 + 2 * DAY_MS)
    with pytest.raises(ValueError, match="did not move past startTime"):
        TimeCursor(step=60_000).follow(request, None, stale, stale)


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def test_klines_served_by_the_stand_in_land_exactly(crawler):
    day = "2024-03-01"
    payload = crawler.server.dataset.recorded["binance_klines"]
    # ETHUSDT listed at 09:30 that day: its first request answers from there
    series = {"BTCUSDT": KlineSeries(1, 0), "ETHUSDT": KlineSeries(2, D2024_03_01 + 570 * 60_000)}
    payload.extra["series"] = series
    payload.page_cap = 700  # the server returns fewer than the 1000 asked
    symbols = [{"symbol": "BTCUSDT", "listed": "2017-08-17"}, {"symbol": "ETHUSDT", "listed": day}]
    crawl = crawler.run("binance_klines", day, run_config={"symbols": symbols})
    assert crawl.counts == (1440 + 870, 1440 + 870, 0, 0, 0)
    stored = {(r["symbol"], r["open_time"]): r for r in crawler.rows(KLINES.table)}
    served = {
        (symbol, _moment(row[0])): row
        for symbol, make in series.items()
        for row in make(D2024_03_01, D2024_03_01 + DAY_MS - 1, 2000)
    }
    assert stored.keys() == served.keys()
    for (symbol, _), row in served.items():
        got = stored[(symbol, _moment(row[0]))]
        assert (got["source"], got["interval"]) == ("binance", "1m")
        assert got["close_time"] == _moment(row[6])
        decimals = ["open", "high", "low", "close", "volume"]
        assert [got[c] for c in decimals] == [Decimal(v) for v in row[1:6]]
        assert got["quote_volume"] == Decimal(row[7]) and got["trade_count"] == row[8]
        assert got["taker_buy_base_volume"] == Decimal(row[9])
        assert got["taker_buy_quote_volume"] == Decimal(row[10])
        assert got["extra"] == {"11": "0"}
    sent = [r.query for r in crawler.server.requests_for("/api/v3/klines")]
    # each page starts one minute after the last bar returned; none past the day's last bar
    assert sorted((q["symbol"], int(q["startTime"])) for q in sent) == [
        ("BTCUSDT", D2024_03_01),
        ("BTCUSDT", D2024_03_01 + 700 * 60_000),
        ("BTCUSDT", D2024_03_01 + 1400 * 60_000),
        ("ETHUSDT", D2024_03_01),
        ("ETHUSDT", D2024_03_01 + (570 + 700) * 60_000),
    ]


def test_the_recorded_payloads_moved_from_staging():
    data = DEFS_ROOT / "binance_klines" / "data"
    assert (data / "PROVENANCE.md").is_file() and (data / KLINES.spec.replay["file"]).is_file()


def test_for_each_takes_a_table_or_a_setting():
    from pydantic import ValidationError

    from ingestion_pipelines.sources.declared_spec import ForEach

    with pytest.raises(ValidationError, match="either `table`"):
        ForEach(table="stock", columns=["symbol"], settings="symbols")
    with pytest.raises(ValidationError, match="either `table`"):
        ForEach()
    assert ForEach(settings="symbols").table is None


def test_the_stand_in_refuses_a_limit_over_1000_as_binance_does(replay):
    from curl_cffi import requests as http

    url = f"{replay.url}/api/v3/klines"
    query = {"symbol": "BTCUSDT", "interval": "1m", "limit": 1001}
    assert http.get(url, params=query).status_code == 400
    served = http.get(url, params={**query, "limit": 3, "startTime": 1554991260000}).json()
    assert [row[0] for row in served] == [1554991260000 + i * 60_000 for i in range(3)]
