"""`vn_stock_eod`, declared in YAML (``defs/vn_stock_eod/defs.yaml``), against its replay: the
recorded day served verbatim, per request (each stock its own rows of its window), and every
other day made by the replay's simulator (``replay.simulator``: `SimulatedPrices`) for the stocks
of the listing. (Before the Python worker was removed, the declaration was proven to store and
reject exactly what it did, side by side on the same served data.)"""

from __future__ import annotations

from datetime import date

from ingestion_pipelines.sources.base import source_classes
from ingestion_pipelines.sources.declared_seed import seed_rows
from ingestion_pipelines.sources.declared_testing import break_declared, check_declared
from ingestion_pipelines.sources.vndirect import replay as vndirect
from ingestion_pipelines.sources.vndirect.testing import PRICE_COLUMNS, exact, served_prices
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines_tests.sources.vndirect.side_by_side import rows, run

PRICES = source_classes()["vn_stock_eod"]
START, END = date(2024, 3, 4), date(2024, 3, 8)  # Monday to Friday, five trading days
RECORDED_DAY = date(2021, 12, 3)  # the day the recording holds (ABB)


class Stored:
    """What the declaration's standard check reads: the server served, the rows stored."""

    def __init__(self, server, url: str):
        self.server, self.url = server, url

    def rows(self, table):
        return rows(self.url, table)


def test_the_recorded_day_is_served_verbatim_and_other_days_are_simulated(server, tmp_path):
    url = f"sqlite:///{tmp_path / 'yaml.db'}"
    seed = PRICES.spec.expect["seed"]  # ABB (the recording's stock, not in the listing) and VNM
    seed_rows(ensure_schema(url), seed)

    recorded = run(PRICES, url, server.url, RECORDED_DAY, RECORDED_DAY)
    assert [r["symbol"] for r in rows(url, tables.stock_eod)] == ["ABB"]
    check_declared(PRICES)(Stored(server, url), RECORDED_DAY.isoformat())
    served = {r.query["q"].split("~")[0] for r in server.requests_for(vndirect.PRICES_PATH)}
    assert served == {"code:ABB", "code:VNM"}
    assert recorded.metadata()["records_fetched"] == 1  # VNM: the recorded day holds ABB only

    simulated = run(PRICES, url, server.url, START, END)
    made = served_prices(server.dataset.stock_book, START, END)
    vnm = {(s, d): r for (s, d), r in made.items() if s == "VNM"}
    stored = {(r["symbol"], r["trade_date"]): r for r in rows(url, tables.stock_eod)}
    assert simulated.written.inserted == len(vnm) == 5  # ABB: no price model, nothing made
    for key, row in vnm.items():
        for column, field in PRICE_COLUMNS.items():
            assert stored[key][column] == exact(row[field]), (key, column)


def test_on_its_recording_a_bad_record_is_rejected_and_nothing_written(server, tmp_path):
    url = f"sqlite:///{tmp_path / 'yaml.db'}"
    seed_rows(ensure_schema(url), PRICES.spec.expect["seed"])
    break_declared(PRICES)(server.dataset, RECORDED_DAY.isoformat())
    run(PRICES, url, server.url, RECORDED_DAY, RECORDED_DAY, reject_threshold=1.0)
    (letter,) = rows(url, tables.dead_letter)
    assert "ABB" in letter["payload"] and "does not hold" in letter["reason"]
    assert rows(url, tables.stock_eod) == []


def test_the_listings_whole_window_is_asked_one_request_per_listed_stock(server, tmp_path):
    url = f"sqlite:///{tmp_path / 'yaml.db'}"
    run(source_classes()["vn_stocks"], url, server.url, None, None)  # `stock` from the listing
    result = run(PRICES, url, server.url, START, END)
    book = server.dataset.stock_book
    listed = {c for c, s in book.specs.items() if s.delisted is None or s.delisted >= START}
    asked = [r.query["q"].split("~")[0][5:] for r in server.requests_for(vndirect.PRICES_PATH)]
    assert sorted(asked) == sorted(listed) and "ROS" not in asked  # delisted in 2023
    assert result.written.inserted == len(served_prices(book, START, END)) >= 20 * 5
