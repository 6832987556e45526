"""Klines backfill: 2 symbols x 1 year of 1-minute klines (`binance_klines`) against the replay,
at the worker's configured rate limit, into MariaDB.

Prints, measured in one run on one fresh MariaDB:
- the backfill through `sources.runner.crawl` (HTTP, exact-decimal JSON, validation, upsert) over
  the whole range in one run, as a single-run backfill does: requests/s against the configured
  `rate_limit_per_s` (the goal: >= 0.8x), rows/s, every row stored;
- the same crawl without a rate limit over `--ceiling-days`, side by side: what the machine
  could do, so that the ratio above measures the limit and not the machine;
- for both, the crawl process's own CPU time, and the load average before and after: on a
  shared machine the wall-clock ratio says how busy the machine was as much as how costly the
  crawl is; requests per CPU-second say the latter.

The replay serves generated 1-minute bars shaped like the recorded ones (`replay.klines`),
computed per request in its own process (a remote server's work costs the crawl nothing).

Usage: .venv/bin/python benchmarks/klines_backfill.py [--database-url URL] [--days 365]
       [--symbols 2] [--rate-limit 5] [--ceiling-days 30]
Without --database-url a temporary MariaDB is started from the test bed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--symbols", type=int, default=2)
    parser.add_argument("--rate-limit", type=float, help="default: the worker's configured one")
    parser.add_argument("--ceiling-days", type=int, default=30)
    parser.add_argument(
        "--buffer-pool-mb", type=int, default=1024, help="the throw-away MariaDB's InnoDB pool"
    )
    args = parser.parse_args()
    os.environ.setdefault("INGEST_LOCAL_DIR", tempfile.mkdtemp(prefix="bench-klines-"))

    from loguru import logger
    from sqlalchemy import func, select, text

    from ingestion_pipelines.http_client.resource import HttpClientResource
    from ingestion_pipelines.replay.http_server import ReplayServer
    from ingestion_pipelines.replay.klines import KlineSeries
    from ingestion_pipelines.sources.base import Window
    from ingestion_pipelines.sources.declared import load_declared_sources
    from ingestion_pipelines.sources.runner import crawl
    from ingestion_pipelines.storage.engines import ensure_schema

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    klines = load_declared_sources()["binance_klines"]
    table = klines.table
    symbols = SYMBOLS[: args.symbols]
    end = datetime.now(UTC).date() - timedelta(days=1)
    start = end - timedelta(days=args.days)

    with ExitStack() as stack:
        url = args.database_url
        if url is None:
            from ingestion_pipelines_tests.testbed.mariadb import throwaway_database

            # a year of 1-minute klines is ~300 MB of rows: a pool that holds them, as a server
            # sized for the table would (the test bed's 64 MB made MariaDB the cost past ~1 M rows)
            url = throwaway_database(stack, buffer_pool_mb=args.buffer_pool_mb)
        os.environ["INGEST_DATABASE_URL"] = url
        engine = ensure_schema(url)

        replay = ReplayServer()  # bound here, served by its own process (below)
        stack.callback(replay.stop)
        payload = replay.dataset.recorded["binance_klines"]
        payload.extra["series"] = {s: KlineSeries(i + 1, 0) for i, s in enumerate(symbols)}
        process = multiprocessing.get_context("fork").Process(
            target=replay._httpd.serve_forever, daemon=True
        )
        process.start()
        stack.callback(process.terminate)

        listed = [{"symbol": s, "listed": "2017-08-17"} for s in symbols]
        base = {"base_url": replay.base_urls()["binance_klines"], "symbols": listed}
        configured = klines.Settings(**base).rate_limit_per_s
        rate = args.rate_limit or configured
        http = HttpClientResource(redis_url="")

        def run(first: date, last: date, rate_limit: float | None):
            with engine.begin() as conn:
                conn.execute(text(f"DELETE FROM {table.name}"))
            settings = klines.Settings(**base, rate_limit_per_s=rate_limit)
            window = Window(first, last, "UTC")
            with http.session("binance_klines", rate_limit_per_s=rate_limit) as session:
                started, cpu = time.perf_counter(), time.process_time()
                result = crawl(
                    klines(settings, window),
                    session=session,
                    data_engine=engine,
                    control_engine=engine,
                )
                seconds = time.perf_counter() - started
                cpu = time.process_time() - cpu
            with engine.connect() as conn:
                stored = conn.execute(select(func.count()).select_from(table)).scalar_one()
            expected = (last - first).days * 1440 * len(symbols)
            assert stored == expected == result.written.inserted, (stored, expected, result.written)
            return result.requests_done, stored, seconds, cpu

        ceiling_start = end - timedelta(days=args.ceiling_days)
        load_before = os.getloadavg()
        c_requests, c_rows, c_seconds, c_cpu = run(ceiling_start, end, None)
        requests, rows, seconds, cpu = run(start, end, rate)
        load_after = os.getloadavg()

    print(f"binance_klines backfill, {len(symbols)} symbols x {args.days} days of 1-minute klines")
    print(f"configured rate_limit_per_s: {configured} (this run: {rate})")
    print(
        "load average (1/5/15 min) before: {:.1f} {:.1f} {:.1f}, after: {:.1f} {:.1f} {:.1f}".format(
            *load_before, *load_after
        )
    )
    print("| run | requests | rows | s | req/s | rows/s | vs limit | crawl CPU s | req/CPU-s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, n, stored, wall, used in (
        ("backfill at the limit", requests, rows, seconds, cpu),
        (f"no limit, {args.ceiling_days} days (ceiling)", c_requests, c_rows, c_seconds, c_cpu),
    ):
        print(
            f"| {label} | {n:,} | {stored:,} | {wall:.1f} | {n / wall:.2f} | "
            f"{stored / wall:,.0f} | {n / wall / rate:.2f}x | {used:.1f} | {n / used:.1f} |"
        )
    print(
        "req/CPU-s: requests per second of the crawl process's own CPU (parse, validation, "
        "upsert, HTTP client), the rate it would keep with a core to itself"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
