"""Cost of a log call to the caller, with stderr and the execution_log writer on.

Prints, in one run: loguru with a do-nothing sink (the floor), our set-up (redaction, buffered
stderr, execution_log queue), and how long the writer took to land all 100,000 rows, on SQLite
and on a temporary MariaDB (or --database-url).

Usage: .venv/bin/python benchmarks/log_calls.py [--calls 100000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--database-url", action="append")
    args = parser.parse_args()
    local = tempfile.mkdtemp(prefix="bench-logs-")
    os.environ["INGEST_LOCAL_DIR"] = local

    from loguru import logger
    from sqlalchemy import func, select

    from ingestion_pipelines.storage import logs
    from ingestion_pipelines.storage.engines import ensure_schema
    from ingestion_pipelines.storage.tables import execution_log

    n = args.calls
    results = []
    with ExitStack() as stack:
        urls = args.database_url
        if not urls:
            from ingestion_pipelines_tests.testbed.mariadb import throwaway_database

            urls = [f"sqlite:///{local}/bench.db", throwaway_database(stack)]
        devnull = open(os.devnull, "w")  # noqa: SIM115
        stack.callback(devnull.close)
        for url in urls:
            engine = ensure_schema(url)
            logger.remove()
            logger.configure(patcher=None)
            logger.add(lambda _m: None, format="{message}")
            t = time.perf_counter()
            for i in range(n):
                logger.info("fetched page {} of {} from https://api.example.com?token=abc", i, n)
            floor = (time.perf_counter() - t) / n * 1e6

            writer = logs.setup_logging("bench", database_url=url)
            logs._stderr.stream = devnull
            log = logger.bind(worker_id="bench", run_id=f"bench-{len(results)}")
            t = time.perf_counter()
            for i in range(n):
                log.info("fetched page {} of {} from https://api.example.com?token=abc", i, n)
            ours = (time.perf_counter() - t) / n * 1e6
            t = time.perf_counter()
            assert writer.flush(timeout_s=120)
            drain = time.perf_counter() - t
            with engine.connect() as conn:
                stored = conn.execute(
                    select(func.count())
                    .select_from(execution_log)
                    .where(execution_log.c.run_id == f"bench-{len(results)}")
                ).scalar_one()
            logs.shutdown_logging()
            results.append((url.split("://")[0], floor, ours, drain, stored, writer.dropped))

    print(f"\n{n:,} log calls in a tight loop (stderr to /dev/null)")
    print(
        f"{'database':<16}{'loguru floor us':>17}{'ours us/call':>14}{'ratio':>8}{'drain s':>9}{'rows':>10}{'dropped':>9}"
    )
    for name, floor, ours, drain, stored, dropped in results:
        print(
            f"{name:<16}{floor:>17.1f}{ours:>14.1f}{ours / floor:>7.1f}x{drain:>9.2f}{stored:>10,}{dropped:>9}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
