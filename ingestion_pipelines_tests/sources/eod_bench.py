"""A generic partitioned source for the engine's tests and `benchmarks/crawl_scale.py`: one
request per symbol and window against the replay's `/bench/eod`, rows into `fund_nav`.

Run as a module it crawls once and prints its result as JSON (the kill -9 tests and the benchmark
run it as a separate process). When `vn_stock_eod` exists, the benchmark swaps to it by replacing
`SOURCE` there.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date

import orjson
from pydantic import Field

from ingestion_pipelines.sources.base import (
    DailyPartitions,
    Exact,
    Expected,
    Record,
    Request,
    Source,
    Window,
)
from ingestion_pipelines.sources.bench import replay as bench
from ingestion_pipelines.storage.tables import fund_nav
from ingestion_pipelines.workers import ScheduledSettings


class BenchSettings(ScheduledSettings):
    symbols: int = Field(1600, ge=1)


class BenchRow(Record):
    fund_id: int = Field(validation_alias="symbol")
    nav_date: date = Field(validation_alias="date")
    nav: Exact = Field(validation_alias="close", gt=0)


class BenchEod(Source):
    """Daily closes of `symbols` numbered symbols, one request per symbol and window."""

    table = fund_nav
    record = BenchRow
    Settings = BenchSettings
    partitions = DailyPartitions(start="2015-01-01")
    date_column = "nav_date"

    def build_requests(self):
        for symbol in range(1, self.settings.symbols + 1):
            yield Request(
                bench.PATH,
                params={
                    "symbol": symbol,
                    "from": self.window.start.isoformat(),
                    "to": self.window.last_day.isoformat(),
                },
            )

    def parse(self, response, request):
        body = orjson.loads(response.content)
        yield Expected(f"symbol {body['symbol']}", body["total"])
        yield from body["data"]


# Set after the class is made, so the test source never joins the worker catalogue.
BenchEod.worker_id = "bench_eod"


def run(
    database_url: str,
    base_url: str,
    start: date,
    end: date,
    *,
    symbols: int,
    concurrency: int = 8,
    rate_limit_per_s: float | None = None,
    redis_url: str = "",
    resume: bool = True,
    run_timeout_s: float = 3600.0,
    batch_rows: int | None = None,
):
    """One crawl of `symbols` × `start..end` (inclusive); returns the `CrawlResult`."""
    from ingestion_pipelines.http_client.resource import HttpClientResource
    from ingestion_pipelines.sources.runner import crawl
    from ingestion_pipelines.storage.engines import ensure_schema

    engine = ensure_schema(database_url)
    settings = BenchSettings(
        base_url=base_url,
        symbols=symbols,
        concurrency=concurrency,
        rate_limit_per_s=rate_limit_per_s,
        run_timeout_s=run_timeout_s,
    )
    window = Window(start, date.fromordinal(end.toordinal() + 1), "Asia/Ho_Chi_Minh")
    http = HttpClientResource(redis_url=redis_url)
    with http.session(
        "bench_eod", impersonate=None, rate_limit_per_s=settings.rate_limit_per_s
    ) as session:
        return crawl(
            BenchEod(settings, window),
            session=session,
            data_engine=engine,
            control_engine=engine,
            resume=resume,
            **({"batch_rows": batch_rows} if batch_rows else {}),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--end", type=date.fromisoformat, required=True)
    parser.add_argument("--symbols", type=int, default=1600)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--batch-rows", type=int)
    args = parser.parse_args(argv)
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    result = run(
        args.database_url,
        args.base_url,
        args.start,
        args.end,
        symbols=args.symbols,
        concurrency=args.concurrency,
        rate_limit_per_s=args.rate,
        redis_url=args.redis_url,
        batch_rows=args.batch_rows,
    )
    import resource

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(orjson.dumps({**result.metadata(), "peak_rss_mb": peak_rss_mb}, default=str).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
