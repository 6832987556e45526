"""vn_stocks and vn_stock_eod against the replay of VNDIRECT's finfo API, through Dagster."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from ingestion_pipelines.market_calendar import previous_trading_day, trading_days
from ingestion_pipelines.sources.vndirect import replay as vndirect
from ingestion_pipelines.storage import tables

PRICE_COLUMNS = {
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "nmVolume",
    "value": "nmValue",
    "average": "average",
    "reference": "basicPrice",
    "ceiling": "ceilingPrice",
    "floor": "floorPrice",
    "adjusted_close": "adClose",
    "change_pct": "pctChange",
}


def exact(value) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def last_weekday(before: date | None = None) -> date:
    """The last trading day before `before` (today): a partition of vn_stock_eod."""
    return previous_trading_day(before or date.today())


def trading_days_before(day: date, count: int) -> date:
    for _ in range(count):
        day = previous_trading_day(day)
    return day


def served_prices(book: vndirect.StockBook, start: date, end: date) -> dict:
    served = {}
    for code, spec in book.specs.items():
        day = start
        while day <= end:
            if spec.trades_on(day):
                served[(code, day)] = spec.row(day)
            day += timedelta(days=1)
    return served


def check_vn_stocks(crawler, _partition):
    stored = {r["symbol"]: r for r in crawler.rows(tables.stock)}
    served = crawler.server.dataset.vn_stocks.rows
    assert len(stored) == len(served) == 26
    for row in served:
        got = stored[row["code"]]
        assert (got["exchange"], got["name"], got["type"], got["status"]) == (
            row["floor"],
            row["companyName"],
            row["type"],
            row["status"],
        )
        assert got["listed_on"] == date.fromisoformat(row["listedDate"])
        assert got["extra"] == {"shortNameEng": row["shortNameEng"], "taxCode": row["taxCode"]}
    assert stored["ROS"]["status"] == "delisted"
    assert stored["ROS"]["delisted_on"] == date(2023, 6, 8)


def check_vn_stock_eod(crawler, partition):
    day = date.fromisoformat(partition)
    served = served_prices(crawler.server.dataset.vn_stocks, day, day)
    stored = {(r["symbol"], r["trade_date"]): r for r in crawler.rows(tables.stock_eod)}
    assert set(stored) == set(served) and len(served) >= 20
    for key, row in served.items():
        got = stored[key]
        for column, field in PRICE_COLUMNS.items():
            assert got[column] == exact(row[field]), (key, column)
        assert got["exchange"] == row["floor"]
        assert got["extra"]["time"] == row["time"]


def test_a_backfill_is_one_run_with_one_price_request_per_listed_stock(crawler):
    end = last_weekday()
    start = trading_days_before(end, 20)
    crawl = crawler.run("vn_stock_eod", partition_range=(start.isoformat(), end.isoformat()))
    book = crawler.server.dataset.vn_stocks
    requests = crawler.server.requests_for(vndirect.PRICES_PATH)
    listed = {c for c, s in book.specs.items() if s.delisted is None or s.delisted >= start}
    assert sorted(r.query["q"].split("~")[0] for r in requests) == sorted(
        f"code:{c}" for c in listed
    )
    served = served_prices(book, start, end)
    stored = crawler.rows(tables.stock_eod)
    assert len(stored) == len(served) == crawl.metadata["records_inserted"]
    assert {r["trade_date"] for r in stored} <= set(trading_days(start, end + timedelta(days=1)))


def test_pages_capped_by_the_server_are_all_fetched(crawler):
    book = crawler.server.dataset.vn_stocks
    book.page_cap = 7  # whatever `size` asks for
    crawler.run("vn_stocks")
    assert len(crawler.rows(tables.stock)) == 26
    assert len(crawler.server.requests_for(vndirect.STOCKS_PATH)) == 4  # 7 + 7 + 7 + 5

    end = last_weekday()
    start = trading_days_before(end, 14)
    crawler.run("vn_stock_eod", partition_range=(start.isoformat(), end.isoformat()))
    assert len(crawler.rows(tables.stock_eod)) == len(served_prices(book, start, end))


def test_an_impossible_day_goes_to_dead_letter_and_the_rest_is_written(crawler):
    day = last_weekday()
    book = crawler.server.dataset.vn_stocks
    spec = book.specs["VNM"]
    real_row = spec.row

    class Broken(vndirect.StockSpec):
        def row(self, d):
            return {**real_row(d), "high": 1.0, "low": 500.0}

    book.specs["VNM"] = Broken(spec.symbol, spec.floor, spec.listed, spec.delisted)
    crawl = crawler.run("vn_stock_eod", day.isoformat())
    assert crawl.metadata["records_rejected"] == 1
    (letter,) = crawler.rows(tables.dead_letter)
    assert letter["worker_id"] == "vn_stock_eod" and "outside [low, high]" in letter["reason"]
    assert '"code":"VNM"' in letter["payload"]
    symbols = {r["symbol"] for r in crawler.rows(tables.stock_eod)}
    assert "VNM" not in symbols and len(symbols) >= 19
