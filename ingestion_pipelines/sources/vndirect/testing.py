"""Expected values of the VNDIRECT replay: the daily prices its simulator serves (the declared
prices source's own standard tests read its defs.yaml `expect`), and the standard tests of every
worker declared with the financial statements hook (`financial_statements.py`: a hook's expected
values are its family's, sources/declared_family.py), whose replay lists only the stocks with
recorded statements."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from ingestion_pipelines.sources.declared_family import hooked_sources
from ingestion_pipelines.sources.testing import Standard
from ingestion_pipelines.sources.vndirect import replay as vndirect
from ingestion_pipelines.sources.vndirect.financial_statements import FinancialStatements
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
    """The last trading day before `before` (today): a daily-prices partition."""
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


def check_statements(source):
    """A check that the worker stored the two recorded rows, exactly, with their model's kind and
    the period of their date."""

    def check(crawler, _partition) -> None:
        stored = {(r["symbol"], r["item_code"]): r for r in crawler.rows(source.table)}
        assert set(stored) == {("FPT", "14310"), ("VCB", "421601")}
        fpt, vcb = stored["FPT", "14310"], stored["VCB", "421601"]
        period = ("statement", "period_type", "fiscal_year", "fiscal_quarter")
        assert tuple(fpt[c] for c in period) == ("balance_sheet", "quarter", 2026, 1)
        assert fpt["value"] == Decimal("1576181989047") and fpt["provider"] == "vndirect"
        assert tuple(vcb[c] for c in period) == ("income", "year", 2025, 0)
        assert vcb["value"] == Decimal("5269108000000") and vcb["fiscal_date"] == date(2025, 12, 31)
        assert vcb["extra"]["modelType"] == "102.0" and vcb["extra"]["companyForm"] == "BANK"
        assert crawler.rows(tables.financial_statement_history) == []
        # the stocks came from VNDIRECT's listing (the `stock` table is empty in these tests)
        assert crawler.server.requests_for(vndirect.STOCKS_PATH)

    return check


def break_statement(dataset, _partition) -> None:
    """FPT's recorded row with an item code that is not a whole number."""
    family = dataset.statement_book.families[("FPT", "QUARTER", 1)]
    family[0] = {**family[0], "itemCode": 14310.5}


def list_the_recorded_stocks(crawler) -> None:
    """The listing served as the stocks whose statements are recorded, not all 26 of vn_stocks'
    recording: the `stock` table stays empty, so the run still reads VNDIRECT's listing for its
    stocks, and asks every recorded family; the other stocks' 12 families each, all empty, cost
    seconds at the declared 10 requests a second and add nothing the check could see."""
    dataset = crawler.server.dataset
    recorded = {code for code, _report_type, _model_type in dataset.statement_book.families}
    rows = [row for row in dataset.stock_book.rows if row["code"] in recorded]
    assert {row["code"] for row in rows} == recorded, "a recorded stock the listing lacks"
    vndirect.use_book(dataset, vndirect.StockBook(rows))


STANDARD = {
    worker_id: Standard(
        check_statements(source),
        break_statement,
        "/v4/financial_statements",
        seed=list_the_recorded_stocks,
    )
    for worker_id, source in hooked_sources(FinancialStatements).items()
}
