"""Expected values of `vn_stock_eod` for the standard tests (`vn_stocks`' are in its defs.yaml)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from ingestion_pipelines.sources.testing import Standard
from ingestion_pipelines.sources.vndirect import replay as vndirect
from ingestion_pipelines.storage import tables
from ingestion_pipelines.vnmarket.calendar import previous_trading_day

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
    """A served number as the exact decimal it stands for."""
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def last_weekday(before: date | None = None) -> date:
    """The last trading day before `before` (today): a partition of vn_stock_eod."""
    return previous_trading_day(before or date.today())


def trading_days_before(day: date, count: int) -> date:
    """The trading day `count` trading days before `day`."""
    for _ in range(count):
        day = previous_trading_day(day)
    return day


def served_prices(book: vndirect.StockBook, start: date, end: date) -> dict:
    """(symbol, day) -> the price row the replay serves, over [start, end]."""
    served = {}
    for code, spec in book.specs.items():
        day = start
        while day <= end:
            if spec.trades_on(day):
                served[(code, day)] = spec.row(day)
            day += timedelta(days=1)
    return served


def check_vn_stock_eod(crawler, partition) -> None:
    """Every price of the day, exactly."""
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


def last_trading_day(_dataset) -> str:
    """The partition of the last trading day before today."""
    return last_weekday().isoformat()


def break_price(dataset, _partition) -> None:
    """VNM's price row with its low above its high."""
    book = dataset.vn_stocks
    spec = book.specs["VNM"]
    real_row = spec.row

    class Broken(vndirect.StockSpec):
        def row(self, day):
            return {**real_row(day), "high": 1.0, "low": 500.0}

    book.specs["VNM"] = Broken(spec.symbol, spec.floor, spec.listed, spec.delisted)


STANDARD = {
    "vn_stock_eod": Standard(
        check_vn_stock_eod, break_price, vndirect.PRICES_PATH, partition=last_trading_day
    ),
}
