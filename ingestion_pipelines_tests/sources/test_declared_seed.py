"""`expect.seed`: what a `for_each` source's standard tests put in place before it runs, rows of
its table or the worker that fills it, on a real SQLite file."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from ingestion_pipelines.sources.base import source_classes
from ingestion_pipelines.sources.declared_seed import seed_of
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema


class Crawler:
    """What a seed uses of the standard tests' crawler: its database, and runs (noted)."""

    def __init__(self, url: str):
        self.database_url, self.ran = url, []

    def run(self, worker_id, partition=None):
        self.ran.append(worker_id)


def declared(expect):
    return SimpleNamespace(spec=SimpleNamespace(expect=expect))


@pytest.fixture
def crawler(sqlite_url):
    yield Crawler(sqlite_url)
    dispose_all()


def test_vn_stock_eod_seeds_the_stock_rows_its_for_each_reads(crawler):
    seed = seed_of(source_classes()["vn_stock_eod"])
    seed(crawler)
    with ensure_schema(crawler.database_url).connect() as conn:
        stored = conn.execute(select(tables.stock.c.symbol, tables.stock.c.listed_on)).all()
    assert sorted(stored) == [("ABB", None), ("VNM", date(2006, 1, 19))]
    assert crawler.ran == []


def test_a_worker_seed_runs_that_worker_first_and_no_seed_is_none(crawler):
    seed_of(declared({"seed": {"worker": "vn_stocks"}}))(crawler)
    assert crawler.ran == ["vn_stocks"]
    assert seed_of(declared({"records": 1})) is None and seed_of(declared(None)) is None


def test_a_seed_naming_no_table_says_so(crawler):
    with pytest.raises(ValueError, match="expect.seed: no table 'stocks'"):
        seed_of(declared({"seed": {"stocks": [{"symbol": "ABB"}]}}))(crawler)
