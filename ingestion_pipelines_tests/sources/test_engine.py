"""The crawl engine at scale, with the declared `vn_stock_eod` against the VNDIRECT replay at its
real paths (one price request per stock of the `stock` table, which `seed_listing` fills by
crawling the replay's listing with `vn_stocks`; prices from the replay's simulator), injected
latency and a request log: requests in flight, the rate at the server, Retry-After host-wide,
streaming batches, resume after a real kill -9, the run deadline, completeness and partition
windows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ingestion_pipelines.http_client.errors import RunDeadlineExceeded
from ingestion_pipelines.replay.http_server import ReplayServer
from ingestion_pipelines.sources.base import source_classes
from ingestion_pipelines.sources.checkpoints import request_key
from ingestion_pipelines.sources.crawl_result import CrawlResult, RejectThresholdError
from ingestion_pipelines.sources.factory import complete_check
from ingestion_pipelines.sources.vndirect import replay as vndirect
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema
from ingestion_pipelines_tests.sources import crawl_process

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAY = date(2024, 3, 4)  # a Monday: DAY + 0..4 are trading days
PRICES = vndirect.PRICES_PATH


@pytest.fixture
def server():
    with ReplayServer() as replay:
        yield replay
    dispose_all()


def count(url: str, table) -> int:
    with ensure_schema(url).connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def stored(url: str) -> list[tuple]:
    table = tables.stock_eod
    with ensure_schema(url).connect() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key))]


def list_stocks(replay: ReplayServer, count: int, *urls: str) -> list[str]:
    """Make the replay list `count` stocks, every one trading since before DAY, and crawl that
    listing into the `stock` table of each database of `urls`; their symbols."""
    book = vndirect.use_book(replay.dataset, vndirect.StockBook(vndirect.generated_rows(count)))
    for url in urls:
        crawl_process.run(url, replay.url, worker_id=crawl_process.LISTING)
    replay.requests.clear()
    return list(book.specs)


def symbols_requested(replay: ReplayServer) -> list[str]:
    """The stock of each price request, in order."""
    return [r.query["q"].split("~")[0].removeprefix("code:") for r in replay.requests_for(PRICES)]


@pytest.mark.parametrize("concurrency", [1, 8])
def test_up_to_concurrency_requests_are_in_flight(server, sqlite_url, concurrency):
    server.latency_s = 0.1
    symbols = list_stocks(server, 40, sqlite_url)
    result = crawl_process.run(sqlite_url, server.url, DAY, DAY, concurrency=concurrency)
    assert server.peak_in_flight == concurrency
    assert sorted(symbols_requested(server)) == sorted(symbols)
    assert result.written.inserted == 40 == count(sqlite_url, tables.stock_eod)


def test_the_rate_limit_holds_at_the_server_across_processes(
    server, sqlite_url, redis_url, tmp_path
):
    """Two crawler processes sharing Redis, each with 8 requests in flight, stay under 10/s
    together, measured at the server."""
    server.latency_s = 0.05
    list_stocks(server, 15, *(f"sqlite:///{tmp_path}/p{n}.db" for n in range(2)))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ingestion_pipelines_tests.sources.crawl_process",
                "--database-url",
                f"sqlite:///{tmp_path}/p{n}.db",
                "--base-url",
                server.url,
                "--start",
                str(DAY + timedelta(n)),
                "--end",
                str(DAY + timedelta(n)),
                "--concurrency",
                "8",
                "--rate",
                "10",
                "--redis-url",
                redis_url,
            ],
            cwd=PROJECT_ROOT,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
            stdout=subprocess.PIPE,
        )
        for n in range(2)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        assert json.loads(out)["records_inserted"] == 15
    times = sorted(r.time for r in server.requests)
    assert len(times) == 30  # 15 prices, twice
    # The server stamps a request once its handler thread has read it: on a loaded machine that
    # lags by up to ~0.1 s (a new connection's first request most), which the bounds allow for.
    assert (len(times) - 1) / (times[-1] - times[0]) <= 10.5
    for i in range(len(times) - 10):  # 11 consecutive requests span 1 s, give or take jitter
        assert times[i + 10] - times[i] >= 0.85, times


def test_retry_after_holds_every_request_to_the_host(server, sqlite_url):
    server.latency_s = 0.1  # without the pause, requests would keep arriving every 0.1 s
    list_stocks(server, 20, sqlite_url)
    server.faults.add(PRICES, 429, retry_after=1)
    result = crawl_process.run(sqlite_url, server.url, DAY, DAY, concurrency=4)
    assert result.http.requests_by_status == {"429": 1, "200": 20}  # 20 prices
    assert result.written.inserted == 20
    times = sorted(r.time for r in server.requests_for(PRICES))
    first = times[0]
    # Requests already sent (or racing out) when the 429 came back may land just after it;
    # then nothing reaches the host for the rest of the second it asked for.
    assert [t - first for t in times if first + 0.3 < t < first + 0.9] == []
    assert max(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.6


def spoiled(spec: vndirect.StockSpec) -> vndirect.StockSpec:
    """`spec` whose rows carry a close that is not a number."""
    real_row = spec.row

    class Spoiled(vndirect.StockSpec):
        def row(self, day):
            return {**real_row(day), "close": "n/a"}

    return Spoiled(spec.symbol, spec.floor, spec.listed, spec.delisted)


def test_rows_stream_in_batches_and_a_run_over_the_threshold_keeps_only_committed_batches(
    server, sqlite_url
):
    good = set(list_stocks(server, 30, sqlite_url)[:10])
    book = server.dataset.stock_book
    for symbol in set(book.specs) - good:  # served with a close that is not a number
        spec = book.specs[symbol]
        book.specs[symbol] = spoiled(spec)

    from ingestion_pipelines.http_client.resource import HttpClientResource
    from ingestion_pipelines.sources.base import Window
    from ingestion_pipelines.sources.runner import crawl

    engine = ensure_schema(sqlite_url)
    prices = source_classes()[crawl_process.WORKER]
    settings = prices.Settings(base_url=server.url, database_url=sqlite_url, concurrency=1)
    window = Window(DAY, DAY + timedelta(days=2), "Asia/Ho_Chi_Minh")  # two trading days
    http = HttpClientResource(redis_url="")
    with (
        http.session(prices.worker_id, impersonate=None) as session,
        pytest.raises(RejectThresholdError) as failure,
    ):
        crawl(
            prices(settings, window),
            session=session,
            data_engine=engine,
            control_engine=engine,
            run_id="run-1",
            batch_rows=6,
        )
    message = str(failure.value)
    assert "40 of 60 records rejected" in message
    assert "18 rows committed in earlier batches are kept" in message
    assert count(sqlite_url, tables.stock_eod) == 18  # three batches of 6; the rest not written
    with engine.connect() as conn:
        letters = conn.execute(select(tables.dead_letter.c.run_id)).scalars().all()
    assert letters == ["run-1"] * 40


def test_a_crawl_killed_with_kill_9_resumes_and_ends_exactly_as_an_uninterrupted_one(
    server, mariadb_url, sqlite_url
):
    server.latency_s = 0.05
    stocks, last = 120, DAY + timedelta(days=4)  # five trading days
    symbols = list_stocks(server, stocks, mariadb_url, sqlite_url)
    command = [
        sys.executable,
        "-m",
        "ingestion_pipelines_tests.sources.crawl_process",
        "--database-url",
        mariadb_url,
        "--base-url",
        server.url,
        "--start",
        str(DAY),
        "--end",
        str(last),
        "--concurrency",
        "4",
        "--batch-rows",
        "25",
    ]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while count(mariadb_url, tables.crawl_checkpoint) < 30:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with ensure_schema(mariadb_url).connect() as conn:
        committed = set(conn.execute(select(tables.crawl_checkpoint.c.request_key)).scalars())
        rows = conn.execute(select(func.count()).select_from(tables.stock_eod)).scalar_one()
    prices = source_classes()[crawl_process.WORKER]
    window = crawl_process.window_of(crawl_process.WORKER, DAY, last)
    source = prices(prices.Settings(database_url=sqlite_url), window)
    by_key = {request_key(r): r.params["q"].split("~")[0][5:] for r in source.build_requests()}
    committed_symbols = {by_key[key] for key in committed}
    assert rows >= len(committed_symbols) * 5
    assert 0 < len(committed_symbols) < stocks
    assert committed_symbols <= set(symbols_requested(server))
    server.requests.clear()

    resumed = crawl_process.run(mariadb_url, server.url, DAY, last, concurrency=4)

    again = symbols_requested(server)
    assert len(again) == len(set(again))
    assert set(again) == set(symbols) - committed_symbols  # only what had not committed
    assert resumed.requests_resumed == len(committed)
    assert resumed.fetched == resumed.records_expected == stocks * 5
    assert count(mariadb_url, tables.crawl_checkpoint) == 0  # the range completed
    crawl_process.run(sqlite_url, server.url, DAY, last, concurrency=4)
    assert stored(mariadb_url) == stored(sqlite_url)
    assert len(stored(sqlite_url)) == stocks * 5


def test_a_run_past_run_timeout_s_fails_naming_worker_and_url(server, sqlite_url):
    server.latency_s = 0.3
    list_stocks(server, 20, sqlite_url)
    started = time.monotonic()
    with pytest.raises(RunDeadlineExceeded) as failure:
        crawl_process.run(sqlite_url, server.url, DAY, DAY, concurrency=1, run_timeout_s=1.0)
    assert time.monotonic() - started < 3
    message = str(failure.value)
    assert message.startswith("vn_stock_eod: GET ") and f"{server.url}{PRICES}" in message
    assert "run_timeout_s=1" in message
    # what committed before the deadline is checkpointed: the next run resumes after it
    rows = count(sqlite_url, tables.stock_eod)
    assert rows > 0 and count(sqlite_url, tables.crawl_checkpoint) == rows


def price_page(rows: list[dict], total: int) -> dict:
    """One page of `/v4/stock_prices` as the API answers it."""
    return {"data": rows, "currentPage": 1, "size": 10, "totalElements": total, "totalPages": 1}


def test_records_outside_the_window_are_counted_not_written(server, sqlite_url):
    (symbol,) = list_stocks(server, 1, sqlite_url)
    spec = server.dataset.stock_book.specs[symbol]
    served = [spec.row(DAY + timedelta(n)) for n in range(-3, 3)]  # Fri..Wed
    server.faults.add(PRICES, 200, body=price_page(served, 6))
    result = crawl_process.run(sqlite_url, server.url, DAY, DAY + timedelta(1))
    assert result.fetched == 6 and result.out_of_window == 4
    assert result.first_out_of_window[0] == f"symbol={symbol}, trade_date={DAY - timedelta(3)}"
    assert [row[1] for row in stored(sqlite_url)] == [DAY, DAY + timedelta(1)]
    assert result.metadata()["records_out_of_window"] == 4


def test_complete_fails_naming_the_shortfall(server, sqlite_url):
    (symbol,) = list_stocks(server, 1, sqlite_url)
    row = server.dataset.stock_book.specs[symbol].row(DAY)
    # The source says 3 rows, sends one, then an empty page: 2 records short.
    server.faults.add(PRICES, 200, body=price_page([row], 3))
    server.faults.add(PRICES, 200, body=price_page([], 3))
    result = crawl_process.run(sqlite_url, server.url, DAY, DAY, concurrency=1)
    assert len(server.requests_for(PRICES)) == 2
    assert result.records_expected == 3 and result.fetched == 1
    assert result.metadata()["records_expected"] == 3
    check = complete_check(result)
    assert not check.passed and check.severity.value == "ERROR"
    assert check.description.startswith("2 records short: fetched 1 of the 3")
    assert complete_check(CrawlResult("w", fetched=5, expected={"a": 5})).passed


def test_a_batch_failing_in_the_writer_thread_fails_the_crawl_and_the_rerun_resumes(
    server, sqlite_url, tmp_path, monkeypatch
):
    """Batches are written in the background while the next one is parsed: a batch that fails
    there fails the crawl with its own error at the next hand-off, the rows buffered meanwhile
    are still committed, and running the range again fetches only what had not committed and
    ends with exactly the rows of an uninterrupted run."""
    from ingestion_pipelines.sources import runner

    real_upsert, calls = runner.upsert, []

    def failing_third_batch(*args, **kwargs):
        calls.append(len(args[2]))
        if len(calls) == 3:
            raise RuntimeError("the database refused batch 3")
        return real_upsert(*args, **kwargs)

    uninterrupted = f"sqlite:///{tmp_path}/uninterrupted.db"
    list_stocks(server, 30, sqlite_url, uninterrupted)
    monkeypatch.setattr(runner, "upsert", failing_third_batch)
    with pytest.raises(RuntimeError, match="refused batch 3"):
        crawl_process.run(sqlite_url, server.url, DAY, DAY, concurrency=1, batch_rows=6)
    assert calls == [6, 6, 6, 6]  # batch 4, buffered when batch 3 failed, still committed
    assert count(sqlite_url, tables.stock_eod) == 18
    first_run = len(symbols_requested(server))

    monkeypatch.setattr(runner, "upsert", real_upsert)
    result = crawl_process.run(sqlite_url, server.url, DAY, DAY, concurrency=1)
    rerun = len(symbols_requested(server)) - first_run
    prices_resumed = result.requests_resumed
    assert prices_resumed + rerun == 30
    assert 12 <= prices_resumed < 18  # not the ones whose rows were in batch 3
    crawl_process.run(uninterrupted, server.url, DAY, DAY, concurrency=1)
    assert stored(sqlite_url) == stored(uninterrupted)
