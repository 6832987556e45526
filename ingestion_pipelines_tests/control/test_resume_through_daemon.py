"""Resume through the daemon: a real dagster-webserver and dagster-daemon (the project's workspace
and dagster.yaml) run a `vn_stock_eod` backfill launched with `ingest backfill` against the
VNDIRECT replay with latency on every request (the listing crawled into `stock` first by
`vn_stocks`; prices from the replay's simulator); its run's processes are killed with kill -9
half-way; the run fails and the daemon's retry of it (Dagster's re-execution of the same range)
fetches only what had not committed, and the table ends exactly as an uninterrupted crawl
leaves it."""

from __future__ import annotations

import os
import signal
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ingestion_pipelines.replay.http_server import ReplayServer
from ingestion_pipelines.replay.routes import read_data
from ingestion_pipelines.sources.base import Window, source_classes
from ingestion_pipelines.sources.checkpoints import request_key
from ingestion_pipelines.sources.vndirect import replay as vndirect
from ingestion_pipelines.sources.vndirect.testing import served_prices
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema
from ingestion_pipelines.vnmarket.calendar import next_trading_day
from ingestion_pipelines_tests.control.helpers import ProjectStack, ingest, project_workspace
from ingestion_pipelines_tests.fakes.dagster_stack import wait_until
from ingestion_pipelines_tests.sources import crawl_process

pytestmark = pytest.mark.slow

START, END = date(2024, 1, 2), date(2024, 3, 26)  # 55 trading days (Tết closes a week)
STOCKS = 200  # 2,000-row batches commit every ~36 price requests
LATENCY_S = 0.25
CONCURRENCY = 4

RUN = """
query ($id: ID!) { runOrError(runId: $id) { ... on Run { runId status tags { key value } } } }"""
RUN_EVENTS = """
query ($id: ID!) {
  logsForRun(runId: $id) { ... on EventConnection { events { ... on MessageEvent { message } } } }
}"""
RUNS_OF_BACKFILL = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { runs { runId } } }
}"""
RETRIES = """
query ($id: String!) {
  runsOrError(filter: {tags: [{key: "dagster/parent_run_id", value: $id}]}) {
    ... on Runs { results { runId } }
  }
}"""
WORKER_RUNS = """
{
  runsOrError(filter: {tags: [{key: "ingest/worker", value: "vn_stock_eod"}]}) {
    ... on Runs { results { runId } }
  }
}"""


def descendants(pid: int) -> list[int]:
    """`pid`'s live descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def events(stack: ProjectStack, run_id: str) -> list[dict]:
    return stack.graphql(RUN_EVENTS, {"id": run_id})["logsForRun"]["events"]


def run_worker_pid(stack: ProjectStack, run_id: str) -> int | None:
    """The pid of the run's process, from its "Started process for run (pid: N)." event."""
    for event in events(stack, run_id):
        message = event.get("message") or ""
        if message.startswith("Started process for run (pid: "):
            return int(message.split("pid: ")[1].split(")")[0])
    return None


def retry_of(stack: ProjectStack, run_id: str) -> str | None:
    """The run the daemon launched to retry `run_id`, once there is one."""
    runs = stack.graphql(RETRIES, {"id": run_id})["runsOrError"]["results"]
    return runs[0]["runId"] if runs else None


def gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie holds nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] in "ZX"
    except OSError:
        return True


def status(stack: ProjectStack, run_id: str) -> str:
    return stack.graphql(RUN, {"id": run_id})["runOrError"]["status"]


def price_symbols(replay: ReplayServer) -> list[str]:
    return [
        r.query["q"].split("~")[0].removeprefix("code:")
        for r in replay.requests_for(vndirect.PRICES_PATH)
    ]


def stored(url: str) -> list[tuple]:
    table = tables.stock_eod
    with ensure_schema(url).connect() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key))]


@pytest.fixture
def replay():
    server = ReplayServer().start()
    book = vndirect.StockBook.recorded(read_data("vndirect_stocks.json"), grow_to=STOCKS)
    vndirect.use_book(server.dataset, book)
    try:
        yield server
    finally:
        server.stop()
        dispose_all()


def test_a_run_killed_with_kill_9_is_retried_by_the_daemon_and_fetches_only_what_was_missing(
    replay, mariadb_url, sqlite_url, tmp_path, monkeypatch
):
    stack = ProjectStack(
        project_workspace(tmp_path / "workspace"),
        root=tmp_path / "dagster",
        env={
            **replay.env(),
            "INGEST_DATABASE_URL": mariadb_url,
            "INGEST_LOCAL_DIR": str(tmp_path / "local"),
            "INGEST_VN_STOCK_EOD__CONCURRENCY": str(CONCURRENCY),
        },
    )
    engine = ensure_schema(mariadb_url)
    for url in (mariadb_url, sqlite_url):  # the `stock` rows the prices are asked for
        crawl_process.run(url, replay.url, worker_id=crawl_process.LISTING)
    replay.requests.clear()
    replay.latency_s = LATENCY_S
    with stack:
        stack.wait_for_daemon(90)
        monkeypatch.setenv("INGEST_DAGSTER_URL", stack.url)
        monkeypatch.setenv("INGEST_DATABASE_URL", mariadb_url)
        launched = ingest(
            "backfill", "vn_stock_eod", "--from", str(START), "--to", str(END), "--json"
        )
        assert launched.code == 0, launched.out + launched.err
        backfill_id = launched.json()["backfill_id"]

        def the_run() -> str | None:
            data = stack.graphql(RUNS_OF_BACKFILL, {"id": backfill_id})
            runs = data["partitionBackfillOrError"].get("runs") or []
            return runs[0]["runId"] if runs else None

        first = wait_until(the_run, 120, interval_s=0.5, what="the backfill's run")

        def half_committed() -> bool:
            assert status(stack, first) in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")
            with engine.connect() as conn:
                query = select(func.count()).select_from(tables.crawl_checkpoint)
                return conn.execute(query).scalar_one() > 30  # 31 stocks

        wait_until(half_committed, 180, interval_s=0.05, what="a first batch to commit")
        pid = run_worker_pid(stack, first)
        assert pid is not None
        for victim in [*descendants(pid), pid]:  # the step's process and the run's
            os.kill(victim, signal.SIGKILL)
        wait_until(lambda: gone(pid), 10, what="the run's process to die")

        with engine.connect() as conn:
            committed = set(conn.execute(select(tables.crawl_checkpoint.c.request_key)).scalars())
        first_symbols = price_symbols(replay)
        replay.requests.clear()
        # The code server sees its run process die and fails the run; the daemon retries it
        # (run_retries in dagster.yaml): Dagster's re-execution of the same range.
        wait_until(lambda: status(stack, first) == "FAILURE", 30, what="the run to fail")
        messages = [e.get("message") or "" for e in events(stack, first)]
        assert any("terminated by signal 9 (SIGKILL)" in m for m in messages)
        retry = wait_until(lambda: retry_of(stack, first), 60, what="the daemon's retry")
        wait_until(
            lambda: status(stack, retry) in ("SUCCESS", "FAILURE", "CANCELED"),
            240,
            interval_s=0.5,
            what="the retried run",
        )
        assert status(stack, retry) == "SUCCESS", stack.describe_logs()
        tags = {
            t["key"]: t["value"] for t in stack.graphql(RUN, {"id": retry})["runOrError"]["tags"]
        }
        assert tags["dagster/retry_number"] == "1"
        assert tags["dagster/asset_partition_range_start"] == str(START)
        assert tags["dagster/asset_partition_range_end"] == str(END)
        runs = stack.graphql(WORKER_RUNS)["runsOrError"]["results"]
        assert {r["runId"] for r in runs} == {first, retry}  # no other run of the worker

    # The committed requests, by symbol: each checkpoint is one stock's prices (the run's
    # window ends where the partition after END starts).
    prices = source_classes()[crawl_process.WORKER]
    window = Window(START, next_trading_day(END), "Asia/Ho_Chi_Minh")
    source = prices(prices.Settings(database_url=sqlite_url), window)
    book = replay.dataset.stock_book
    by_key = {request_key(r): r.params["q"].split("~")[0][5:] for r in source.build_requests()}
    committed_symbols = {by_key[key] for key in committed}
    every = set(by_key.values())  # the stocks listed at some point of the range
    assert 30 <= len(committed_symbols) < len(every)
    assert committed_symbols <= set(first_symbols)

    again = price_symbols(replay)
    assert len(again) == len(set(again))  # nothing twice
    assert set(again) == every - committed_symbols  # only what had not committed
    with engine.connect() as conn:  # the range completed: its checkpoints are gone
        assert conn.execute(select(func.count()).select_from(tables.crawl_checkpoint)).scalar() == 0

    replay.latency_s = 0.0
    crawl_process.run(sqlite_url, replay.url, START, END, concurrency=8)  # uninterrupted
    assert stored(mariadb_url) == stored(sqlite_url)
    assert len(stored(sqlite_url)) == len(served_prices(book, START, END)) > STOCKS * 50
