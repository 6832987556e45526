"""One crawl of `vn_financial_statements` outside Dagster, as a Dagster run does it: the kill -9
test and `benchmarks/financial_statements.py` run it as a separate process (to kill it, to
measure its peak memory). The stocks are those of the `stock` table of `--database-url`.

    python -m ingestion_pipelines_tests.sources.vndirect.statements_process \
        --database-url URL --base-url http://127.0.0.1:PORT [--concurrency 8] [--rate 20]

prints the run's metadata and `peak_rss_mb` as one JSON line.
"""

from __future__ import annotations

import argparse
import resource
import sys

import orjson

WORKER = "vn_financial_statements"


def run(
    database_url: str,
    base_url: str,
    *,
    concurrency: int = 8,
    rate_limit_per_s: float | None = None,
    redis_url: str = "",
    batch_rows: int | None = None,
    page_size: int = 2000,
    run_id: str | None = None,
):
    """One crawl of every family; returns the `CrawlResult`."""
    from ingestion_pipelines.http_client.resource import HttpClientResource
    from ingestion_pipelines.sources.base import source_classes
    from ingestion_pipelines.sources.runner import crawl
    from ingestion_pipelines.storage.engines import ensure_schema

    source = source_classes()[WORKER]
    engine = ensure_schema(database_url)
    settings = source.Settings(
        base_url=base_url,
        database_url=database_url,
        concurrency=concurrency,
        rate_limit_per_s=rate_limit_per_s,
        page_size=page_size,
        run_timeout_s=7200.0,
    )
    http = HttpClientResource(redis_url=redis_url)
    with http.session(WORKER, impersonate=None, rate_limit_per_s=rate_limit_per_s) as session:
        return crawl(
            source(settings),
            session=session,
            data_engine=engine,
            control_engine=engine,
            run_id=run_id,
            **({"batch_rows": batch_rows} if batch_rows else {}),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--batch-rows", type=int)
    parser.add_argument("--page-size", type=int, default=2000)
    args = parser.parse_args(argv)
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    result = run(
        args.database_url,
        args.base_url,
        concurrency=args.concurrency,
        rate_limit_per_s=args.rate,
        redis_url=args.redis_url,
        batch_rows=args.batch_rows,
        page_size=args.page_size,
    )
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(orjson.dumps({**result.metadata(), "peak_rss_mb": peak_rss_mb}, default=str).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
