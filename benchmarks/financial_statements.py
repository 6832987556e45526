"""`vn_financial_statements` (declared in defs/vn_financial_statements/defs.yaml, its hook
sources/vndirect/financial_statements.py) at scale against the VNDIRECT replay at its real paths
(`/v4/financial_models`, then one paged `/v4/financial_statements` family per stock × report type
× statement model), with injected latency, into MariaDB (the test bed). The stocks are generated
ones in the `stock` table; the replay serves each `--years` years of quarterly and annual rows of
`--items` line items per statement model (shaped like the captured rows: JSON floats of whole
VND), plus the recorded model types' families (empty for generated stocks).

Prints:
1. a full crawl in its own process: families, requests, rows, wall time, the request rate
   measured at the server against the configured rate limit (goal ≥ 0.9×), peak RSS (goal
   < 300 MB);
2. the same crawl killed with kill -9 half-way and run again: requests the second run sent, the
   finished families it did not fetch again (goal: none refetched), and its time against a full run.

Usage: .venv/bin/python benchmarks/financial_statements.py [--symbols 1600] [--years 10]
       [--items 4] [--rate R (default: the worker's rate_limit_per_s, 10)] [--concurrency 16]
       [--latency-ms 150] [--no-resume]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = "ingestion_pipelines_tests.sources.crawl_process"
STATEMENTS = "/v4/financial_statements"


def prepare(server, url: str, codes: list[str]) -> None:
    """The `stock` table of `url` lists `codes` (as vn_stocks would have filled it)."""
    from ingestion_pipelines.storage import tables
    from ingestion_pipelines.storage.engines import ensure_schema
    from ingestion_pipelines.storage.upsert import upsert

    rows = [
        {
            "symbol": code,
            "exchange": "HOSE",
            "name": f"Công ty {code}",
            "name_en": None,
            "short_name": None,
            "type": "STOCK",
            "status": "listed",
            "listed_on": date(2010, 1, 4),
            "delisted_on": None,
            "isin": None,
            "company_id": None,
            "extra": None,
        }
        for code in codes
    ]
    upsert(ensure_schema(url), tables.stock, rows)


def child(url: str, base_url: str, args) -> list[str]:
    """The command line of one crawl process."""
    return [
        sys.executable,
        "-m",
        CHILD,
        "--worker",
        "vn_financial_statements",
        "--run-timeout",
        "7200",
        "--database-url",
        url,
        "--base-url",
        base_url,
        "--concurrency",
        str(args.concurrency),
        "--rate",
        str(args.rate),
    ]


def run_child(url: str, server, args) -> tuple[dict, float]:
    """One crawl in its own process: its metadata and wall time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    out = subprocess.run(
        child(url, server.url, args), cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE
    ).stdout
    return json.loads(out.decode().strip().splitlines()[-1]), time.perf_counter() - started


def server_rate(requests) -> float:
    """Requests per second at the server, from the first request to the last."""
    times = sorted(r.time for r in requests)
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


def checkpoints(url: str) -> int:
    from sqlalchemy import func, select

    from ingestion_pipelines.storage import tables
    from ingestion_pipelines.storage.engines import ensure_schema

    with ensure_schema(url).connect() as conn:
        query = select(func.count()).select_from(tables.crawl_checkpoint)
        return conn.execute(query).scalar_one()


def families(requests) -> list[str]:
    """The family (q) of each first page asked."""
    return [r.query["q"] for r in requests if r.path == STATEMENTS and r.query.get("page") == "1"]


def killed_and_resumed(server, url: str, args, total_families: int) -> dict:
    """Kill -9 a crawl once half its families committed, run it again; what the rerun sent."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server.requests.clear()
    started = time.perf_counter()
    proc = subprocess.Popen(child(url, server.url, args), cwd=ROOT, env=env, stdout=subprocess.PIPE)
    while checkpoints(url) < total_families // 2:
        if proc.poll() is not None:
            raise RuntimeError("the crawl ended before it could be killed")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first_part = time.perf_counter() - started
    committed = checkpoints(url)
    before = set(families(server.requests))
    server.requests.clear()
    result, wall = run_child(url, server, args)
    again = families(server.requests)
    return {
        "killed_after_s": first_part,
        "checkpoints_at_kill": committed,
        "families_asked_before": len(before),
        "families_asked_again": len(again),
        "refetched_finished": committed - result["requests_resumed"],
        "requests_resumed": result["requests_resumed"],
        "resume_wall_s": wall,
        "result": result,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=1600)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--items", type=int, default=4, help="line items per statement model")
    parser.add_argument("--rate", type=float, help="the rate limit (default: the worker's)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=150)
    parser.add_argument("--no-resume", action="store_true")
    args = parser.parse_args()
    if args.rate is None:
        from ingestion_pipelines.sources.declared import declared_sources

        # the declared worker's own setting (defs/vn_financial_statements/defs.yaml)
        args.rate = declared_sources()["vn_financial_statements"].Settings().rate_limit_per_s
    os.environ.setdefault("INGEST_LOCAL_DIR", tempfile.mkdtemp(prefix="bench-statements-"))
    from loguru import logger

    from ingestion_pipelines.replay.http_server import ReplayServer
    from ingestion_pipelines.sources.vndirect.replay import generated_rows
    from ingestion_pipelines_tests.testbed.mariadb import MariaDBServer

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    with ReplayServer() as server, MariaDBServer() as mariadb:
        mariadb.start()
        server.latency_s = args.latency_ms / 1000
        codes = [row["code"] for row in generated_rows(args.symbols)]
        book = server.dataset.statement_book
        book.grow(codes, args.years, args.items)
        models = len({m["modelType"] for m in book.models})
        total_families = len(codes) * 2 * models
        print(
            f"vn_financial_statements: {len(codes)} stocks x {args.years} years, {args.items} items "
            f"per statement model, {models} statement models, {total_families} families; "
            f"latency {args.latency_ms:.0f} ms, rate limit {args.rate:g} req/s, "
            f"concurrency {args.concurrency}; MariaDB (test bed)",
            flush=True,
        )
        url = mariadb.url(mariadb.create_database("full"))
        prepare(server, url, codes)
        result, wall = run_child(url, server, args)
        rate = server_rate(server.requests)
        families_rate = server_rate([r for r in server.requests if r.path == STATEMENTS])
        print(
            f"1. full crawl: {result['http_requests']} "
            f"requests, {result['records_inserted']:,} rows (expected "
            f"{result.get('records_expected', 0):,}), crawl {result['duration_s']:.1f} s, process "
            f"{wall:.1f} s; rate at the server {rate:.2f} req/s = {rate / args.rate:.2f}x the "
            f"limit ({families_rate / args.rate:.2f}x over the statement requests); peak RSS {result['peak_rss_mb']:.0f} MB",
            flush=True,
        )
        if not args.no_resume:
            url = mariadb.url(mariadb.create_database("killed"))
            prepare(server, url, codes)
            out = killed_and_resumed(server, url, args, total_families)
            print(
                f"2. killed (kill -9) after {out['killed_after_s']:.1f} s with "
                f"{out['checkpoints_at_kill']} requests committed; the rerun resumed "
                f"{out['requests_resumed']} of them, asked {out['families_asked_again']} of "
                f"{total_families} families (finished families fetched again: "
                f"{out['refetched_finished']}) in {out['resume_wall_s']:.1f} s vs "
                f"{wall:.1f} s for a full run; rows {out['result']['records_inserted']:,} "
                f"+ resumed = expected {out['result'].get('records_expected', 0):,}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
