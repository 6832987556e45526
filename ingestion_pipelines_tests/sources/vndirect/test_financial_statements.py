"""vn_financial_statements (its declaration defs/vn_financial_statements/defs.yaml and its hook
sources/vndirect/financial_statements.py) against the VNDIRECT replay at its real paths: the
families asked per
stock of the `stock` table × report type × statement model, item names joined from the models
listing, non-statement models and QUARTER2/ESTIMATION rows skipped and counted, a restatement
updating its row with the replaced value kept, and a run killed with kill -9 resuming without
fetching its finished families again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from sqlalchemy import func, select

from ingestion_pipelines.replay.http_server import ReplayServer
from ingestion_pipelines.sources.base import SourceError
from ingestion_pipelines.sources.checkpoints import request_key
from ingestion_pipelines.sources.declared import declared_sources
from ingestion_pipelines.sources.vndirect import replay_statements as replay
from ingestion_pipelines.sources.vndirect.financial_statements import FinancialStatements
from ingestion_pipelines.sources.vndirect.replay import generated_rows
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema
from ingestion_pipelines.storage.upsert import upsert
from ingestion_pipelines_tests.sources import crawl_process

PROJECT_ROOT = Path(__file__).resolve().parents[3]
WORKER = "vn_financial_statements"
MODELS = 6  # model types of the served listing: 1, 102, 203 (recorded) and 3 generated


def declared() -> type[FinancialStatements]:
    """The worker's class, made from its declaration with the hook as its code."""
    cls = declared_sources()[WORKER]
    assert issubclass(cls, FinancialStatements) and cls.resumable and cls.totals
    return cls


@pytest.fixture
def server():
    with ReplayServer() as running:
        yield running
    dispose_all()


def seed_stocks(url: str, codes: list[str]) -> None:
    """The `stock` table as vn_stocks fills it, for `codes`."""
    rows = [
        {
            "symbol": code,
            "exchange": "HOSE",
            "name": f"Công ty {code}",
            "name_en": None,
            "short_name": None,
            "type": "STOCK",
            "status": "listed",
            "listed_on": date(2006, 12, 13),
            "delisted_on": None,
            "isin": None,
            "company_id": None,
            "extra": None,
        }
        for code in codes
    ]
    upsert(ensure_schema(url), tables.stock, rows)


def grown(server: ReplayServer, count: int, years: int = 2, items: int = 3) -> list[str]:
    """`count` generated stocks served with statements; their codes."""
    codes = [row["code"] for row in generated_rows(count)]
    server.dataset.statement_book.grow(codes, years, items)
    return codes


def count(url: str, table) -> int:
    with ensure_schema(url).connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def stored(url: str) -> list[tuple]:
    table = tables.financial_statement
    with ensure_schema(url).connect() as conn:
        query = select(*(c for c in table.columns if c.name != "extra"))
        return [tuple(r) for r in conn.execute(query.order_by(*table.primary_key))]


def families_asked(server: ReplayServer) -> list[str]:
    return [r.query["q"] for r in server.requests_for(replay.STATEMENTS_PATH)]


def test_every_family_of_the_stock_table_joined_with_its_items_and_a_restatement_kept(
    server, sqlite_url
):
    codes = grown(server, 2)
    seed_stocks(sqlite_url, ["FPT", "VCB", *codes])
    first = crawl_process.run(
        sqlite_url, server.url, worker_id=WORKER, concurrency=4, run_id="run-1"
    )

    asked = families_asked(server)
    assert len(asked) == len(set(asked)) == 4 * 2 * MODELS
    assert "code:FPT~reportType:QUARTER~modelType:1" in asked
    assert server.requests_for("/v4/stocks") == []  # the stock table named the stocks
    rows = {(r[0], r[1], r[2], r[3], r[4], r[5]): r for r in stored(sqlite_url)}
    generated = 2 * (2 * 4 + 2) * 3 * 3  # stocks × periods (8 quarters + 2 years) × items × models
    assert first.written.inserted == len(rows) == 2 + generated
    assert first.fetched == first.records_expected == 2 + generated
    income = rows[(codes[0], "income", "quarter", 2025, 4, "200200")]
    names = {c.name: v for c, v in zip(tables.financial_statement.columns, income, strict=False)}
    assert (names["item_name_vi"], names["item_name_en"]) == ("Khoản mục 200200", "Item 200200")
    assert names["fiscal_date"] == date(2025, 12, 31) and names["provider"] == "vndirect"

    book = server.dataset.statement_book
    book.restate(("FPT", "QUARTER", 1), "2026-03-31", 14310, Decimal("1576181990000"), "2026-05-02")
    second = crawl_process.run(
        sqlite_url, server.url, worker_id=WORKER, concurrency=4, run_id="run-2"
    )
    assert (second.written.inserted, second.written.updated) == (0, 1)
    assert second.written.unchanged == 1 + generated
    with ensure_schema(sqlite_url).connect() as conn:
        kept = conn.execute(select(tables.financial_statement_history)).mappings().one()
        now = conn.execute(
            select(
                tables.financial_statement.c.value, tables.financial_statement.c.modified_date
            ).where(tables.financial_statement.c.item_code == "14310")
        ).one()
    assert (kept["symbol"], kept["item_code"], kept["fiscal_quarter"]) == ("FPT", "14310", 1)
    assert (kept["value"], kept["modified_date"], kept["run_id"]) == (
        Decimal("1576181989047"),
        None,  # the capture's row carries no modifiedDate
        "run-2",
    )
    assert tuple(now) == (Decimal("1576181990000"), "2026-05-02")


def response(body: dict) -> SimpleNamespace:
    return SimpleNamespace(content=orjson.dumps(body))


def test_non_statement_models_and_non_reported_periods_are_skipped_and_counted():
    cls = declared()
    source = cls(cls.Settings(report_types=["ANNUAL"]))
    models = [
        replay.model_row(1, "BALANCESHEET", "NON_FINANCE", 14310),
        replay.model_row(33, "ESTIMATION", "ALL_FORMS", 900001),
        replay.model_row(90, "EXPLAINATION", "NON_FINANCE", 800001),
    ]
    source.listed_symbols = lambda: ["FPT"]
    request = source.models_request(1)
    out = list(source.parse(response({"data": models, "totalElements": 3}), request))
    assert [r.params["q"] for r in out] == ["code:FPT~reportType:ANNUAL~modelType:1"]
    assert source.skipped == {
        "model 33 ESTIMATION (not a statement)": 1,
        "model 90 EXPLAINATION (not a statement)": 1,
    }
    rows = [
        replay.StatementBook.served_row("FPT", 14310, kind, 1, 5, "2025-12-31")
        for kind in ("ANNUAL", "QUARTER2", "ESTIMATION")
    ]
    page = source.parse(response({"data": rows, "totalElements": 3}), out[0])
    records = [item for item in page if isinstance(item, dict)]
    assert [r["reportType"] for r in records] == ["ANNUAL"]
    assert records[0]["modelTypeName"] == "BALANCESHEET"
    assert source.skipped["reportType QUARTER2"] == source.skipped["reportType ESTIMATION"] == 1


def test_a_models_listing_without_statements_fails_the_run():
    cls = declared()
    source = cls(cls.Settings())
    models = [replay.model_row(90, "EXPLAINATION", "NON_FINANCE", 800001)]
    with pytest.raises(SourceError, match="no statement model"):
        list(source.parse(response({"data": models, "totalElements": 1}), source.models_request(1)))


def test_a_crawl_killed_with_kill_9_resumes_without_fetching_finished_families(
    server, mariadb_url, sqlite_url
):
    book = server.dataset.statement_book
    book.latency_s = 0.03
    codes = grown(server, 40)
    seed_stocks(mariadb_url, codes)
    seed_stocks(sqlite_url, codes)
    command = [
        sys.executable,
        "-m",
        "ingestion_pipelines_tests.sources.crawl_process",
        "--worker",
        "vn_financial_statements",
        "--database-url",
        mariadb_url,
        "--base-url",
        server.url,
        "--concurrency",
        "4",
        "--batch-rows",
        "40",
    ]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while count(mariadb_url, tables.crawl_checkpoint) < 60:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with ensure_schema(mariadb_url).connect() as conn:
        committed = set(conn.execute(select(tables.crawl_checkpoint.c.request_key)).scalars())
    cls = declared()
    source = cls(cls.Settings())
    family_of = {
        request_key(source.statements_request(code, kind, str(model))): f"{code}:{kind}:{model}"
        for code in codes
        for kind in ("QUARTER", "ANNUAL")
        for model in (1, 102, 203, 2001, 2002, 2003)
    }
    done = {family_of[key] for key in committed}  # first pages only: one page per family here
    assert 60 <= len(done) < len(family_of)
    server.requests.clear()

    resumed = crawl_process.run(mariadb_url, server.url, worker_id=WORKER, concurrency=4)

    again = [
        q.replace("code:", "").replace("~reportType:", ":").replace("~modelType:", ":")
        for q in families_asked(server)
    ]
    assert len(again) == len(set(again))
    assert set(again) == set(family_of.values()) - done  # only what had not committed
    assert resumed.requests_resumed == len(committed)
    assert count(mariadb_url, tables.crawl_checkpoint) == 0  # the crawl completed
    crawl_process.run(sqlite_url, server.url, worker_id=WORKER, concurrency=4)
    assert stored(mariadb_url) == stored(sqlite_url)
    assert len(stored(sqlite_url)) == 40 * 90
