"""`vn_stock_eod` declared in YAML (``staging/vn_stock_eod/defs.yaml``) against the Python worker
(`sources/vndirect/eod.py`), side by side on the same served data: the rows stored, the records
rejected, and the declaration's own standard checks on its recording, served per request (one
stock's rows of its window each) by the recorded replay."""

from __future__ import annotations

from datetime import date

from ingestion_pipelines.replay import routes
from ingestion_pipelines.sources.base import source_classes
from ingestion_pipelines.sources.declared_replay import _handler, recorded_payload
from ingestion_pipelines.sources.declared_seed import seed_rows
from ingestion_pipelines.sources.declared_testing import break_declared, check_declared
from ingestion_pipelines.sources.vndirect import replay as vndirect
from ingestion_pipelines.sources.vndirect.eod import VnStockEod
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines_tests.sources.staged import staged_class
from ingestion_pipelines_tests.sources.vndirect.side_by_side import rows, run

STAGED = staged_class("vn_stock_eod")
START, END = date(2024, 3, 4), date(2024, 3, 8)  # Monday to Friday, five trading days
RECORDED_DAY = date(2021, 12, 3)  # the day the recording holds (ABB)


def break_vnm(book: vndirect.StockBook) -> None:
    """VNM's rows served with a low above their high (as vndirect.testing.break_price)."""
    spec = book.specs["VNM"]
    real_row = spec.row

    class Broken(vndirect.StockSpec):
        def row(self, day):
            return {**real_row(day), "high": 1.0, "low": 500.0}

    book.specs["VNM"] = Broken(spec.symbol, spec.floor, spec.listed, spec.delisted)


def test_the_declaration_stores_and_rejects_what_the_python_worker_does(server, tmp_path):
    python_url, yaml_url = (f"sqlite:///{tmp_path / n}.db" for n in ("python", "yaml"))
    break_vnm(server.dataset.vn_stocks)
    python = run(VnStockEod, python_url, server.url, START, END)
    listing = source_classes()["vn_stocks"]  # declared in YAML: the listing the declaration walks
    run(listing, yaml_url, server.url, None, None)
    declared = run(STAGED, yaml_url, server.url, START, END)

    stored = rows(python_url, tables.stock_eod)
    assert stored == rows(yaml_url, tables.stock_eod)
    assert len(stored) == python.written.inserted == declared.written.inserted >= 20 * 5
    assert {r["symbol"] for r in stored} == set(server.dataset.vn_stocks.specs) - {"VNM", "ROS"}
    rejected = [rows(u, tables.dead_letter) for u in (python_url, yaml_url)]
    assert [len(r) for r in rejected] == [5, 5]  # VNM's five days, by both
    assert sorted(r["payload"] for r in rejected[0]) == sorted(r["payload"] for r in rejected[1])
    assert all("low <= open <= high does not hold" in r["reason"] for r in rejected[1])
    # the listing's request is vn_stocks' now: one price request per listed stock, as before
    prices = [r for r in server.requests_for(vndirect.PRICES_PATH)]
    assert len(prices) == 2 * 25  # ROS, delisted in 2023, is asked by neither


class Stored:
    """What the declaration's standard check reads: the server served, the rows stored."""

    def __init__(self, server, url: str):
        self.server, self.url = server, url

    def rows(self, table):
        return rows(self.url, table)


def serve_recording(server, monkeypatch, path: str) -> None:
    """The staged declaration's recorded replay (per request) at `path` of `server`."""
    server.dataset.recorded[STAGED.worker_id] = recorded_payload(STAGED)
    monkeypatch.setitem(routes.ROUTES, path, {"GET": _handler(STAGED)})


def test_on_its_recording_each_stock_is_served_its_rows_as_the_python_worker_stores(
    server, tmp_path, monkeypatch
):
    serve_recording(server, monkeypatch, vndirect.PRICES_PATH)
    seed = STAGED.spec.expect["seed"]
    python_url, yaml_url = (f"sqlite:///{tmp_path / n}.db" for n in ("python", "yaml"))
    server.dataset.recorded["vn_stocks"].records = [  # the Python listing: the seed's stocks
        {"code": s["symbol"], "floor": s["exchange"], "type": "STOCK", "status": "listed",
         "listedDate": s.get("listed_on") and s["listed_on"].isoformat()}
        for s in seed["stock"]
    ]  # fmt: skip
    run(VnStockEod, python_url, server.url, RECORDED_DAY, RECORDED_DAY)
    seed_rows(ensure_schema(yaml_url), seed)
    result = run(STAGED, yaml_url, server.url, RECORDED_DAY, RECORDED_DAY)

    assert rows(python_url, tables.stock_eod) == rows(yaml_url, tables.stock_eod)
    assert [r["symbol"] for r in rows(yaml_url, tables.stock_eod)] == ["ABB"]
    check_declared(STAGED)(Stored(server, yaml_url), RECORDED_DAY.isoformat())
    served = {r.query["q"].split("~")[0]: r for r in server.requests_for(vndirect.PRICES_PATH)}
    assert set(served) == {"code:ABB", "code:VNM"}
    assert result.metadata()["records_fetched"] == 1  # VNM: nothing on that day, total 0


def test_on_its_recording_a_bad_record_is_rejected_and_another_day_serves_nothing(
    server, tmp_path, monkeypatch
):
    serve_recording(server, monkeypatch, vndirect.PRICES_PATH)
    url = f"sqlite:///{tmp_path / 'yaml.db'}"
    seed_rows(ensure_schema(url), STAGED.spec.expect["seed"])
    other_day = run(STAGED, url, server.url, START, START)
    assert other_day.metadata()["records_fetched"] == 0  # the recording's day only
    break_declared(STAGED)(server.dataset, RECORDED_DAY.isoformat())
    run(STAGED, url, server.url, RECORDED_DAY, RECORDED_DAY, reject_threshold=1.0)
    (letter,) = rows(url, tables.dead_letter)
    assert "ABB" in letter["payload"] and "does not hold" in letter["reason"]
    assert rows(url, tables.stock_eod) == []
