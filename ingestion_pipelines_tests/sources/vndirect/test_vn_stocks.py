"""vn_stocks and vn_stock_eod against the replay of VNDIRECT's finfo API, through Dagster: the
listing crawled into `stock` first (the declared `vn_stock_eod` asks prices for its rows), then
days the prices recording does not hold, served by its simulator (`SimulatedPrices`)."""

from __future__ import annotations

from datetime import timedelta

from ingestion_pipelines.sources.vndirect import replay as vndirect
from ingestion_pipelines.sources.vndirect.testing import (
    PRICE_COLUMNS,
    exact,
    last_weekday,
    served_prices,
    trading_days_before,
)
from ingestion_pipelines.storage import tables
from ingestion_pipelines.vnmarket.calendar import trading_days


def test_a_backfill_is_one_run_with_one_price_request_per_listed_stock(crawler):
    end = last_weekday()
    start = trading_days_before(end, 20)
    crawler.run("vn_stocks")
    crawl = crawler.run("vn_stock_eod", partition_range=(start.isoformat(), end.isoformat()))
    book = crawler.server.dataset.stock_book
    requests = crawler.server.requests_for(vndirect.PRICES_PATH)
    listed = {c for c, s in book.specs.items() if s.delisted is None or s.delisted >= start}
    assert sorted(r.query["q"].split("~")[0] for r in requests) == sorted(
        f"code:{c}" for c in listed
    )
    served = served_prices(book, start, end)
    stored = crawler.rows(tables.stock_eod)
    assert len(stored) == len(served) == crawl.metadata["records_inserted"]
    assert {r["trade_date"] for r in stored} <= set(trading_days(start, end + timedelta(days=1)))
    by_key = {(r["symbol"], r["trade_date"]): r for r in stored}
    assert set(by_key) == set(served) and len(served) >= 20 * 20
    for key, row in served.items():  # every price of every day, exactly
        got = by_key[key]
        for column, field in PRICE_COLUMNS.items():
            assert got[column] == exact(row[field]), (key, column)
        assert got["exchange"] == row["floor"] and got["extra"]["time"] == row["time"]


def test_pages_capped_by_the_server_are_all_fetched(crawler):
    book = crawler.server.dataset.stock_book
    crawler.server.dataset.recorded["vn_stocks"].page_cap = 7  # whatever `size` asks for
    crawler.run("vn_stocks")
    assert len(crawler.rows(tables.stock)) == 26
    assert len(crawler.server.requests_for(vndirect.STOCKS_PATH)) == 4  # 7 + 7 + 7 + 5

    end = last_weekday()
    start = trading_days_before(end, 14)
    crawler.run("vn_stock_eod", partition_range=(start.isoformat(), end.isoformat()))
    assert len(crawler.rows(tables.stock_eod)) == len(served_prices(book, start, end))


def test_an_impossible_day_goes_to_dead_letter_and_the_rest_is_written(crawler):
    day = last_weekday()
    book = crawler.server.dataset.stock_book
    spec = book.specs["VNM"]
    real_row = spec.row

    class Broken(vndirect.StockSpec):
        def row(self, d):
            return {**real_row(d), "high": 1.0, "low": 500.0}

    book.specs["VNM"] = Broken(spec.symbol, spec.floor, spec.listed, spec.delisted)
    crawler.run("vn_stocks")
    crawl = crawler.run("vn_stock_eod", day.isoformat())
    assert crawl.metadata["records_rejected"] == 1
    (letter,) = crawler.rows(tables.dead_letter)
    assert letter["worker_id"] == "vn_stock_eod" and "does not hold" in letter["reason"]
    assert '"code":"VNM"' in letter["payload"]
    symbols = {r["symbol"] for r in crawler.rows(tables.stock_eod)}
    assert "VNM" not in symbols and len(symbols) >= 19
