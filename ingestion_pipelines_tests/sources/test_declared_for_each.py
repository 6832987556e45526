"""`request.for_each`: one request per row of another table, only the rows whose span meets the
run's window when `within` says so (a stock listed and not yet delisted), on a real SQLite file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import insert

from ingestion_pipelines.config import workers
from ingestion_pipelines.sources import declared
from ingestion_pipelines.sources.base import SourceError, Window
from ingestion_pipelines.sources.declared import source_class
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.declared import Declaration
from ingestion_pipelines.storage.engines import get_engine

STOCKS = [  # symbol, listed_on, delisted_on
    ("AAA", date(2010, 1, 4), None),
    ("BBB", date(2024, 3, 4), None),  # listed after the window
    ("CCC", date(2012, 5, 2), date(2024, 2, 1)),  # delisted before it
    ("DDD", None, date(2024, 3, 1)),  # delisted on its last day
]


def test_one_request_per_row_meeting_the_window(tmp_path: Path, monkeypatch):
    # the example stays out of the catalogue (the worker list and the declared sources)
    monkeypatch.setattr(declared, "_MADE", dict(declared._MADE))
    monkeypatch.setattr(workers, "_registry", dict(workers.catalogue()))
    url = f"sqlite:///{tmp_path / 'for_each.db'}"
    engine = get_engine(url)
    tables.stock.create(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(tables.stock),
            [
                {
                    "symbol": s,
                    "exchange": "HOSE",
                    "name": s,
                    "type": "STOCK",
                    "status": "listed",
                    "listed_on": first,
                    "delisted_on": last,
                }
                for s, first, last in STOCKS
            ],
        )
    attributes = {
        "worker_id": "for_each_example",
        "settings": {"base_url": "https://finfo-api.vndirect.com.vn"},
        "request": {
            "path": "/v4/stock_prices",
            "query": {
                "q": "code:{row.symbol}~date:gte:{window.start}~date:lte:{window.last_day}",
                "size": "{window.days}",
            },
            "for_each": {
                "table": "stock",
                "columns": ["symbol"],
                "within": ["listed_on", "delisted_on"],
            },
        },
        "paginator": {"kind": "page_number", "total": "totalElements"},
        "records": "data",
        "table": {"name": "stock_eod", "columns": {}},
    }
    source = source_class(Declaration(tmp_path, attributes))
    window = Window(date(2024, 2, 26), date(2024, 3, 2), "Asia/Ho_Chi_Minh")
    settings = source.Settings(database_url=url)
    requests = list(source(settings, window).build_requests())
    assert [r.params["q"] for r in requests] == [
        f"code:{s}~date:gte:2024-02-26~date:lte:2024-03-01" for s in ("AAA", "DDD")
    ]
    assert {r.params["size"] for r in requests} == {5} and requests[0].params["page"] == 1
    assert [r.meta["family"] for r in requests] == ["AAA", "DDD"]
    engine.dispose()


def _seeded(tmp_path: Path) -> str:
    """A SQLite file holding three stocks and two funds; its URL."""
    url = f"sqlite:///{tmp_path / 'subset.db'}"
    engine = get_engine(url)
    tables.stock.create(engine)
    tables.fund.create(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(tables.stock),
            [
                {"symbol": s, "exchange": "HOSE", "name": s, "type": "STOCK", "status": "listed"}
                for s in ("FPT", "SSI", "VND")
            ],
        )
        conn.execute(
            insert(tables.fund),
            [
                {"fund_id": 20, "code": "VEOF", "name": "VEOF"},
                {"fund_id": 23, "code": "DCDS", "name": "DCDS"},
            ],
        )
    return url


def test_every_stock_and_every_fund_unless_a_setting_names_a_subset(tmp_path: Path):
    url = _seeded(tmp_path)
    sources = declared.load_declared_sources()
    events, holdings = sources["vn_corporate_events"], sources["fmarket_fund_holdings"]

    def asked(source, param, **settings):
        requests = source(source.Settings(database_url=url, **settings)).build_requests()
        return [r.params.get(param) or r.path for r in requests]

    assert asked(events, "ticker") == ["FPT", "SSI", "VND"]
    assert asked(events, "ticker", tickers="VND, SSI") == ["SSI", "VND"]
    assert asked(events, "ticker", tickers="XYZ") == []  # not in `stock`: nothing asked
    assert asked(holdings, "-") == ["/res/products/20", "/res/products/23"]
    assert asked(holdings, "-", fund_ids="23") == ["/res/products/23"]
    with pytest.raises(SourceError, match="fund_ids"):
        asked(holdings, "-", fund_ids="VEOF")  # a code, not fmarket's product id
    get_engine(url).dispose()


def test_profiles_ask_listed_stocks_only_and_their_subset(tmp_path: Path):
    url = _seeded(tmp_path)
    with get_engine(url).begin() as conn:
        conn.execute(
            insert(tables.stock),
            {"symbol": "OLD", "exchange": "HNX", "name": "OLD", "type": "STOCK"}
            | {"status": "delisted"},
        )
    profiles = declared.load_declared_sources()["vn_company_profiles"]

    def asked(**settings):
        requests = profiles(profiles.Settings(database_url=url, **settings)).build_requests()
        return [r.json["variables"]["ticker"] for r in requests]

    assert asked() == ["FPT", "SSI", "VND"]  # `where: {status: listed}`: OLD is not asked
    assert asked(tickers="OLD,SSI") == ["SSI"]
    get_engine(url).dispose()


def test_a_where_naming_no_column_is_refused(tmp_path: Path):
    url = _seeded(tmp_path)
    events = declared.load_declared_sources()["vn_corporate_events"]
    spec = events.spec.request.for_each.model_copy(update={"where": {"state": "listed"}})
    from ingestion_pipelines.sources.declared_subset import subset_clauses

    with pytest.raises(SourceError, match="state"):
        subset_clauses(spec, tables.stock, events.Settings(database_url=url))
    get_engine(url).dispose()


def test_an_empty_table_fails_the_run_naming_its_writer(tmp_path: Path, monkeypatch):
    # nothing listed yet is not "no stock to ask for": the writer has not run (unexpected silence)
    monkeypatch.setattr(declared, "_MADE", dict(declared._MADE))
    monkeypatch.setattr(workers, "_registry", dict(workers.catalogue()))
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = get_engine(url)
    tables.stock.create(engine)
    attributes = {
        "worker_id": "for_each_empty_example",
        "settings": {"base_url": "https://finfo-api.vndirect.com.vn"},
        "request": {
            "path": "/v4/stock_prices",
            "query": {"q": "code:{row.symbol}"},
            "for_each": {"table": "stock", "columns": ["symbol"]},
        },
        "records": "data",
        "table": {"name": "stock_eod", "columns": {}},
    }
    source = source_class(Declaration(tmp_path, attributes))
    assert source.upstream == ("vn_stocks",)
    with pytest.raises(SourceError, match=r"table `stock` is empty: its writer `vn_stocks`"):
        list(source(source.Settings(database_url=url)).build_requests())
    engine.dispose()


def test_a_reader_depends_on_the_writer_of_its_table_and_runs_after_it():
    import dagster as dg

    from ingestion_pipelines.definitions import build_definitions
    from ingestion_pipelines.sources.base import first_run_waves

    graph = build_definitions().resolve_asset_graph()
    for reader, writer in (
        ("vn_stock_eod", "vn_stocks"),
        ("fmarket_fund_holdings", "fmarket_funds"),
    ):
        assert dg.AssetKey(writer) in graph.get(dg.AssetKey(reader)).parent_keys
    waves = first_run_waves(["vn_stock_eod", "fear_greed", "vn_stocks", "vn_corporate_events"])
    assert waves == [["fear_greed", "vn_stocks"], ["vn_stock_eod", "vn_corporate_events"]]
