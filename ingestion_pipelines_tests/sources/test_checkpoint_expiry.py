"""Checkpoints of a range that never completes expire (`checkpoint_ttl_s`), never while a run of
the range runs; on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import insert, select

from ingestion_pipelines.replay.http_server import ReplayServer
from ingestion_pipelines.sources.base import source_classes
from ingestion_pipelines.sources.checkpoints import (
    Checkpoints,
    request_key,
    scope_of,
)
from ingestion_pipelines.sources.vndirect import replay as vndirect
from ingestion_pipelines.sources.vndirect.testing import served_prices
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema
from ingestion_pipelines_tests.sources import crawl_process

DAY = date(2024, 3, 1)  # a Friday, a trading day
WEEK = 7 * 86400.0
PRICES = source_classes()[crawl_process.WORKER]  # declared in YAML
NOTHING_YIELDED = {"followups": [], "expected": {}, "fetched": 0, "rejected": 0, "out_of_window": 0}


@pytest.fixture
def server():
    with ReplayServer() as replay:
        yield replay
    dispose_all()


def seed(engine, worker_id: str, scope: str, age: timedelta, key: str = "k") -> None:
    """A checkpoint committed `age` ago."""
    with engine.begin() as conn:
        conn.execute(
            insert(tables.crawl_checkpoint).values(
                worker_id=worker_id,
                scope=scope,
                request_key=key,
                state=NOTHING_YIELDED,
                committed_at=datetime.now(UTC) - age,
            )
        )


def ranges(engine) -> set[tuple[str, str]]:
    query = select(tables.crawl_checkpoint.c.worker_id, tables.crawl_checkpoint.c.scope)
    with engine.connect() as conn:
        return {tuple(row) for row in conn.execute(query)}


def test_a_range_untouched_for_the_ttl_starts_over_and_the_workers_stale_ranges_expire(
    server, database_url
):
    engine = ensure_schema(database_url)
    crawl_process.run(database_url, server.url, worker_id=crawl_process.LISTING)  # `stock`
    window = crawl_process.window_of("vn_stock_eod", DAY, DAY)
    own = scope_of(window)
    # Were it not expired, this stale checkpoint of one stock's prices would make the run skip
    # that stock.
    first = next(iter(PRICES(PRICES.Settings(database_url=database_url), window).build_requests()))
    seed(engine, "vn_stock_eod", own, timedelta(days=8), key=request_key(first))
    seed(engine, "vn_stock_eod", "2023-01-02..2023-01-31", timedelta(days=8))
    seed(engine, "vn_stock_eod", "2023-02-01..2023-02-28", timedelta(days=8), key="old")
    seed(engine, "vn_stock_eod", "2023-02-01..2023-02-28", timedelta(hours=1), key="new")
    seed(engine, "fmarket_nav", "2023-01-02..2023-01-31", timedelta(days=8))  # its own TTL

    result = crawl_process.run(database_url, server.url, DAY, DAY, concurrency=4)

    served = served_prices(server.dataset.stock_book, DAY, DAY)
    assert result.requests_resumed == 0
    assert result.written.inserted == len(served) >= 20
    assert first.params["q"] in {r.query["q"] for r in server.requests_for(vndirect.PRICES_PATH)}
    assert ranges(engine) == {
        ("vn_stock_eod", "2023-02-01..2023-02-28"),  # touched an hour ago: kept whole
        ("fmarket_nav", "2023-01-02..2023-01-31"),
    }  # and the run's own range completed: its checkpoints are gone
    with engine.connect() as conn:
        keys = conn.execute(select(tables.crawl_checkpoint.c.request_key)).scalars().all()
    assert sorted(keys) == ["k", "new", "old"]


def test_a_range_a_run_has_loaded_is_not_expired_while_it_runs(database_url):
    engine = ensure_schema(database_url)
    seed(engine, "vn_stock_eod", "2024-01-02..2024-01-31", timedelta(days=6, hours=23))
    seed(engine, "vn_stock_eod", "2024-02-01..2024-02-29", timedelta(days=6, hours=23))
    started = datetime.now(UTC)

    running = Checkpoints(engine, "vn_stock_eod", "2024-01-02..2024-01-31", WEEK)
    assert running.load() == {"k": NOTHING_YIELDED}  # younger than a week: resumed

    # Time passes: a later run expires what has been untouched for a day by then. The range
    # that was loaded is younger than that; the one no run has loaded is not.
    later = Checkpoints(engine, "vn_stock_eod", "2024-03-01..2024-03-01", 86400.0)
    assert later.expire_stale() == ["2024-02-01..2024-02-29"]
    assert ranges(engine) == {("vn_stock_eod", "2024-01-02..2024-01-31")}
    with engine.connect() as conn:
        touched = conn.execute(select(tables.crawl_checkpoint.c.committed_at)).scalar_one()
    assert touched >= started - timedelta(seconds=1)


def test_checkpoint_ttl_s_may_not_be_shorter_than_run_timeout_s():
    assert PRICES.Settings().checkpoint_ttl_s == WEEK
    assert PRICES.Settings(run_timeout_s=600, checkpoint_ttl_s=3600).checkpoint_ttl_s == 3600
    with pytest.raises(ValidationError) as refused:
        PRICES.Settings(checkpoint_ttl_s=3600)  # run_timeout_s defaults to 6 h
    assert "may not be shorter than run_timeout_s (21600)" in str(refused.value)
