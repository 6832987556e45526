"""The crawl engine at scale, side by side in one run: `vn_stock_eod` (declared in YAML) against
the replay of VNDIRECT's finfo API at its real paths (`/v4/stocks` crawled into `stock` by
`vn_stocks` first, then one `/v4/stock_prices` request per listed stock, the prices made by the
replay's simulator), its listing grown with generated companies to the size asked, with injected
latency.

Prints (crawl s: the crawl itself, from its first request to its last commit; process s: the
whole process, with interpreter start and schema check):
1. curl_cffi's AsyncSession against the engine's thread pool (same requests, same latency);
2. requests/s and wall time of `--requests` stocks × 1 day at concurrency 1, 4, 8, 16 with a
   generous rate limit, and at a 10 req/s limit (the rate measured at the server), with the peak
   number of requests the server saw in flight;
3. the peak RSS of a crawl of `--rows` rows (a separate process, as in production);
4. a backfill killed with kill -9 half-way and resumed, against a full restart;
5. the Dagster backfill ratio of `benchmarks/nav_backfill.py` (unless `--no-dagster`);
6. `vn_stock_eod` declared in YAML (``defs/vn_stock_eod/defs.yaml``: one request per row of the
   `stock` table, filled first by `vn_stocks`, untimed) against the Python worker it replaced,
   kept as a benchmark-local reference (`benchmarks/reference_vn_stock_eod.py`, which fetches the
   listing itself), `--requests` stocks × 1 day at concurrency 8, in alternating order, the same
   replay: rows/s of each crawl.

Goals (issue 11): at 150 ms and concurrency 8, ≥ 6× the sequential rate; ≤ 10 req/s at the server
under a 10 req/s limit; RSS < 300 MB for a million rows; resumed ≤ 0.6× a full restart. Issue 18:
the YAML `vn_stock_eod` at ≥ 0.95× the (former) Python worker's rate.

Usage: .venv/bin/python benchmarks/crawl_scale.py [--requests 1600] [--latency-ms 150]
       [--rows 1000000] [--no-dagster] [--declared-only] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOURCE_MODULE = "ingestion_pipelines_tests.sources.crawl_process"  # crawls vn_stock_eod
REFERENCE = "benchmarks.reference_vn_stock_eod:VnStockEod"  # the former Python worker
DAY = date(2024, 3, 1)  # a Friday, a trading day


def list_stocks(server, count: int) -> list[str]:
    """Make the replay list `count` stocks (the recorded ones, then generated); their symbols."""
    from ingestion_pipelines.replay.routes import read_data
    from ingestion_pipelines.sources.vndirect.replay import StockBook, use_book

    book = StockBook.recorded(read_data("vndirect_stocks.json"), grow_to=count)
    book.rows = book.rows[:count]
    book.specs = {row["code"]: book.specs[row["code"]] for row in book.rows}
    use_book(server.dataset, book)
    return [row["code"] for row in book.rows]


def served_rows(server, first: date, last: date) -> int:
    """Rows the replay serves for `first..last` (every listed stock on its trading days)."""
    from ingestion_pipelines.vnmarket.calendar import trading_days

    days = list(trading_days(first, last + timedelta(days=1)))
    return sum(spec.trades_on(d) for spec in server.dataset.stock_book.specs.values() for d in days)


def trading_day_after(day: date, count: int) -> date:
    """The trading day `count` trading days after `day`."""
    from ingestion_pipelines.vnmarket.calendar import next_trading_day

    for _ in range(count):
        day = next_trading_day(day)
    return day


def run_child(args: list[str]) -> dict:
    """One crawl in its own process (the module prints its result as JSON)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", SOURCE_MODULE, *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.PIPE,
    ).stdout
    return json.loads(out.splitlines()[-1])


def async_vs_threads(server, symbols: list[str], concurrency: int):
    """(req/s, CPU s) of curl_cffi AsyncSession and of the engine's thread pool, the same price
    requests (one per symbol)."""
    from concurrent.futures import ThreadPoolExecutor

    from curl_cffi.requests import AsyncSession

    from ingestion_pipelines.http_client.resource import HttpClientResource
    from ingestion_pipelines.sources.vndirect.replay import PRICES_PATH

    n = len(symbols)
    urls = [
        f"{server.url}{PRICES_PATH}?sort=date&q=code:{s}~date:gte:{DAY}~date:lte:{DAY}&size=1&page=1"
        for s in symbols
    ]

    async def fetch_all():
        gate = asyncio.Semaphore(concurrency)
        async with AsyncSession(max_clients=concurrency) as session:

            async def one(url):
                async with gate:
                    response = await session.get(url)
                    return len(response.content)

            return await asyncio.gather(*(one(u) for u in urls))

    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(fetch_all())
    async_rate, async_cpu = n / (time.perf_counter() - wall), time.process_time() - cpu

    http = HttpClientResource(redis_url="")
    with (
        http.session("bench", impersonate=None) as session,
        ThreadPoolExecutor(concurrency) as pool,
    ):
        cpu, wall = time.process_time(), time.perf_counter()
        list(pool.map(session.get, urls))
        thread_rate, thread_cpu = n / (time.perf_counter() - wall), time.process_time() - cpu
    return async_rate, async_cpu, thread_rate, thread_cpu


def crawl_once(server, url: str, concurrency: int, rate: float | None, first: date):
    """One crawl of every listed stock × 1 day; returns (requests, crawl s, process wall s, rate
    at the server, most requests in one second at the server, peak in flight)."""
    server.requests.clear()
    server.peak_in_flight = 0
    args = ["--database-url", url, "--base-url", server.url, "--listing"]
    args += ["--start", str(first), "--end", str(first), "--concurrency", str(concurrency)]
    if rate:
        args += ["--rate", str(rate)]
    started = time.perf_counter()
    result = run_child(args)
    wall = time.perf_counter() - started
    assert result["records_inserted"] == served_rows(server, first, first), result
    times = sorted(r.time for r in server.requests)
    measured = (len(times) - 1) / (times[-1] - times[0])
    worst_second = max(
        sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times)
    )
    requests = len(times)
    return requests, result["duration_s"], wall, measured, worst_second, server.peak_in_flight


def resume_vs_restart(server, url_for, n: int, days: int):
    """((uninterrupted crawl s, process s), (resumed crawl s, process s), requests resumed) of
    an n-stock × `days` trading days backfill killed by kill -9 once half of its requests have
    committed."""
    from sqlalchemy import func, select

    from ingestion_pipelines.storage.engines import ensure_schema
    from ingestion_pipelines.storage.tables import crawl_checkpoint

    last = trading_day_after(DAY, days - 1)
    base = ["--base-url", server.url, "--listing", "--start", str(DAY), "--end", str(last)]
    started = time.perf_counter()
    result = run_child(["--database-url", url_for("full"), *base])
    full = (result["duration_s"], time.perf_counter() - started)

    killed = url_for("killed")
    engine = ensure_schema(killed)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", SOURCE_MODULE, "--database-url", killed, *base]
    command += ["--batch-rows", str(days * 10)]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    query = select(func.count()).select_from(crawl_checkpoint)
    while True:
        with engine.connect() as conn:
            if conn.execute(query).scalar_one() >= n // 2:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    started = time.perf_counter()
    result = run_child(["--database-url", killed, *base])
    resumed = (result["duration_s"], time.perf_counter() - started)
    assert result["records_fetched"] == served_rows(server, DAY, last), result
    return full, resumed, result["requests_resumed"]


def declared_vs_python(server, url_for, repeats: int) -> dict[str, list[float]]:
    """Rows/s of the former Python `vn_stock_eod` (`REFERENCE`) and of its YAML declaration,
    `repeats` crawls each of one trading day of every listed stock, alternating which goes
    first."""
    rates: dict[str, list[float]] = {"python": [], "yaml": []}
    for i in range(repeats):
        day = trading_day_after(DAY, i)
        for kind in ("python", "yaml") if i % 2 == 0 else ("yaml", "python"):
            url = url_for(f"declared_{kind}_{i}")
            args = ["--database-url", url, "--base-url", server.url, "--concurrency", "8"]
            args += ["--start", str(day), "--end", str(day)]
            # the YAML reads the listing from `stock` (filled untimed); the reference fetches it
            args.append("--listing" if kind == "yaml" else f"--source={REFERENCE}")
            result = run_child(args)
            assert result["records_inserted"] == served_rows(server, day, day), result
            rates[kind].append(result["records_inserted"] / result["duration_s"])
    return rates


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1600)
    parser.add_argument("--latency-ms", type=float, default=150)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-dagster", action="store_true")
    parser.add_argument("--declared-only", action="store_true", help="section 6 only")
    parser.add_argument("--repeats", type=int, default=3, help="crawls of each in section 6")
    args = parser.parse_args()
    os.environ.setdefault("INGEST_LOCAL_DIR", tempfile.mkdtemp(prefix="bench-scale-"))
    from loguru import logger

    from ingestion_pipelines.replay.http_server import ReplayServer
    from ingestion_pipelines_tests.testbed.mariadb import MariaDBServer

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with ReplayServer() as server, MariaDBServer() as mariadb:
        mariadb.start()

        def url_for(name: str) -> str:
            return mariadb.url(mariadb.create_database(name))

        latency = args.latency_ms / 1000
        server.latency_s = latency
        say(f"Crawl scale, replay latency {args.latency_ms:.0f} ms, into MariaDB (test bed)")
        if args.declared_only:
            declared_section(server, url_for, args, say)
            return 0

        # 1. async vs threads
        symbols = list_stocks(server, max(args.requests, 400))
        say("\n1. curl_cffi AsyncSession vs the engine's thread pool (400 GETs)")
        say(f"{'concurrency':>12}{'async req/s':>14}{'CPU s':>8}{'threads req/s':>16}{'CPU s':>8}")
        for concurrency in (8, 16):
            a_rate, a_cpu, t_rate, t_cpu = async_vs_threads(server, symbols[:400], concurrency)
            say(f"{concurrency:>12}{a_rate:>14.1f}{a_cpu:>8.2f}{t_rate:>16.1f}{t_cpu:>8.2f}")

        # 2. concurrency sweep and a rate limit
        n = len(list_stocks(server, args.requests))
        say(
            f"\n2. {n} stocks x 1 day: the listing, then one request per stock "
            "(generous limit: 1000 req/s)"
        )
        say(
            f"{'concurrency':>12}{'limit':>8}{'crawl s':>9}{'req/s':>9}{'vs c=1':>8}"
            f"{'max in 1 s':>12}{'in flight':>11}{'process s':>11}"
        )
        sequential = None
        for day_offset, (concurrency, rate) in enumerate(
            ((1, 1000.0), (4, 1000.0), (8, 1000.0), (16, 1000.0), (16, 10.0))
        ):
            requests, crawl_s, wall, at_server, worst, peak = crawl_once(
                server,
                url_for(f"c{concurrency}_{int(rate)}"),
                concurrency,
                rate,
                trading_day_after(DAY, day_offset),
            )
            rate_s = requests / crawl_s
            sequential = sequential or rate_s
            say(
                f"{concurrency:>12}{rate:>8g}{crawl_s:>9.1f}{rate_s:>9.1f}"
                f"{rate_s / sequential:>7.1f}x{worst:>12}{peak:>11}{wall:>11.1f}"
                + (f"   (server-measured rate {at_server:.2f}/s)" if rate < 100 else "")
            )

        # 3. peak RSS of a big crawl (no latency: as fast as it goes)
        server.latency_s = 0.0
        stocks = len(list_stocks(server, 1000))
        days = max(1, args.rows // stocks)
        first = date(2021, 1, 4)  # every generated stock is listed by then
        last = trading_day_after(first, days - 1)
        started = time.perf_counter()
        result = run_child(
            [
                "--database-url",
                url_for("rss"),
                "--base-url",
                server.url,
                "--listing",
                "--start",
                str(first),
                "--end",
                str(last),
            ]
        )
        wall = time.perf_counter() - started
        assert result["records_inserted"] == result["records_expected"], result
        say(
            f"\n3. {result['records_inserted']:,} rows ({stocks} stocks x {days} trading days): peak RSS "
            f"{result['peak_rss_mb']:.0f} MB, {result['batches_committed']} batches, {wall:.1f} s"
        )

        # 4. resumed after kill -9 vs a full restart
        server.latency_s = latency
        stocks = len(list_stocks(server, 400))
        full, resumed, skipped = resume_vs_restart(server, url_for, stocks, 30)
        say(
            f"\n4. {stocks} stocks x 30 trading days, killed (kill -9) half-way and resumed vs a "
            f"full restart:\n   crawl {resumed[0]:.1f} s vs {full[0]:.1f} s = "
            f"{resumed[0] / full[0]:.2f}x; whole process {resumed[1]:.1f} s vs {full[1]:.1f} s = "
            f"{resumed[1] / full[1]:.2f}x ({skipped} of {stocks + 1} requests not sent again)"
        )

        declared_section(server, url_for, args, say)

    # 5. the Dagster backfill ratio
    if not args.no_dagster:
        say("\n5. Dagster backfill (benchmarks/nav_backfill.py, 60 funds x 10 years)")
        out = subprocess.run(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "nav_backfill.py"),
                "--instances",
                "ephemeral,postgres-batched",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout
        report = out.splitlines()
        first = next(i for i, line in enumerate(report) if line.startswith("NAV backfill"))
        for line in report[first:]:
            if line.strip():
                say("   " + line)
    return 0


def declared_section(server, url_for, args, say) -> None:
    """Section 6: the YAML `vn_stock_eod` against the former Python worker, side by side."""
    from statistics import median

    stocks = len(list_stocks(server, args.requests))
    rates = declared_vs_python(server, url_for, args.repeats)
    python, yaml = median(rates["python"]), median(rates["yaml"])
    say(
        f"\n6. vn_stock_eod declared in YAML vs the former Python worker (benchmark-local "
        f"reference), {stocks} stocks x 1 day, "
        f"concurrency 8, {args.repeats} crawls each (median rows/s):\n   Python {python:.1f}, "
        f"YAML {yaml:.1f} = {yaml / python:.2f}x  (each: "
        + ", ".join(f"{k} {' '.join(f'{r:.1f}' for r in v)}" for k, v in rates.items())
        + ")"
    )


if __name__ == "__main__":
    sys.exit(main())
