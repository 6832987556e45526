"""One crawl of a worker (by default `vn_stock_eod`, over a range of days; an unpartitioned one
such as `vn_financial_statements` whole), outside Dagster, as `crawl()` runs it in a Dagster run:
the engine's tests and the benchmarks (`crawl_scale.py`, `financial_statements.py`) run it as a
separate process (to kill it with kill -9, to measure its peak memory).

    python -m ingestion_pipelines_tests.sources.crawl_process --database-url URL \
        --base-url http://127.0.0.1:PORT [--worker ID] [--start 2024-03-01 --end 2024-03-29] \
        [--listing] [--source module:Class]

prints the run's metadata and `peak_rss_mb` as one JSON line. What is crawled is what the server
serves (for `vn_stock_eod`, every stock of the `stock` table at `--database-url`: crawl the
replay's listing into it first with ``--worker vn_stocks``, `LISTING`).
"""

from __future__ import annotations

import argparse
import resource
import sys
from datetime import date, timedelta

import orjson

WORKER = "vn_stock_eod"
LISTING = "vn_stocks"  # fills the `stock` table WORKER asks prices for


def source_of(worker_id: str, source: str | None = None):
    """The worker's source class, or the class at `source` (``module:Class``, e.g. a benchmark's
    reference implementation outside the catalogue)."""
    import importlib

    from ingestion_pipelines.sources.base import source_classes

    if source:
        module_name, _, name = source.partition(":")
        return getattr(importlib.import_module(module_name), name)
    return source_classes()[worker_id]


def window_of(worker_id: str, start: date | None, end: date | None, source_path: str | None = None):
    """The window of a range run of partitions `start..end` (inclusive); None when the worker has
    no partitions (or no range is given)."""
    from ingestion_pipelines.sources.base import Window

    source = source_of(worker_id, source_path)
    if source.partitions is None or start is None or end is None:
        return None
    return Window(start, end + timedelta(days=1), source.partitions.timezone)


def run(
    database_url: str,
    base_url: str,
    start: date | None = None,
    end: date | None = None,
    *,
    worker_id: str = WORKER,
    concurrency: int = 8,
    rate_limit_per_s: float | None = None,
    redis_url: str = "",
    resume: bool = True,
    run_timeout_s: float = 3600.0,
    batch_rows: int | None = None,
    source_path: str | None = None,
    run_id: str | None = None,
):
    """One crawl of `worker_id` (or of the class at `source_path`, ``module:Class``) over
    `start..end` (inclusive); returns the `CrawlResult`. A `for_each` source reads its rows from
    `database_url`."""
    from ingestion_pipelines.http_client.resource import HttpClientResource
    from ingestion_pipelines.sources.runner import crawl
    from ingestion_pipelines.storage.engines import ensure_schema

    source = source_of(worker_id, source_path)
    engine = ensure_schema(database_url)
    settings = source.Settings(
        base_url=base_url,
        database_url=database_url,
        concurrency=concurrency,
        rate_limit_per_s=rate_limit_per_s,
        run_timeout_s=run_timeout_s,
    )
    http = HttpClientResource(redis_url=redis_url)
    with http.session(
        source.worker_id, impersonate=None, rate_limit_per_s=settings.rate_limit_per_s
    ) as session:
        return crawl(
            source(settings, window_of(worker_id, start, end, source_path)),
            session=session,
            data_engine=engine,
            control_engine=engine,
            run_id=run_id,
            resume=resume,
            **({"batch_rows": batch_rows} if batch_rows else {}),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", default=WORKER)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--start", type=date.fromisoformat)
    parser.add_argument("--end", type=date.fromisoformat)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--batch-rows", type=int)
    parser.add_argument("--run-timeout", type=float, default=3600.0)
    parser.add_argument("--source", help="module:Class crawled instead of the worker's class")
    parser.add_argument(
        "--listing", action="store_true", help=f"crawl {LISTING} into `stock` first (untimed)"
    )
    args = parser.parse_args(argv)
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    if args.listing:
        run(args.database_url, args.base_url, worker_id=LISTING, redis_url=args.redis_url)
    result = run(
        args.database_url,
        args.base_url,
        args.start,
        args.end,
        worker_id=args.worker,
        concurrency=args.concurrency,
        rate_limit_per_s=args.rate,
        redis_url=args.redis_url,
        batch_rows=args.batch_rows,
        source_path=args.source,
        run_timeout_s=args.run_timeout,
    )
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(orjson.dumps({**result.metadata(), "peak_rss_mb": peak_rss_mb}, default=str).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
