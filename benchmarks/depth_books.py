"""`binance_depth` under the issue-21 measures: 20 symbols at 100 ms, and book snapshot writes
against the raw insert ceiling.

    .venv/bin/python benchmarks/depth_books.py [--database-url mysql+pymysql://...] [--seconds 60]

Without `--database-url` a throw-away MariaDB is started (the test bed's `MariaDBServer`).

1. The Binance depth stand-in (this process) serves 20 symbols, one diff event every 100 ms each;
   the sidecar runs as `ingest sidecar` does, in its own process (`python -m
   ingestion_pipelines.sidecar --feeds binance_depth`, its writer process too) with
   `snapshot_ms` 100. Over `--seconds`, once every book is in sync: the CPU of the sidecar and its
   writer (user + system time from /proc over wall time; goal: under one core), the p50/p99 from a
   diff's `E` (stamped by the stand-in when the frame is written) to the event applied to its book
   (the feed's health; goal p99 <= 50 ms), the books stored and the resynchronisations.
2. `order_book_snapshot` rows (top 20 a side, the feed's own rows) written through the sidecar's
   writer (`Writer.submit` -> batches -> commit) as fast as it takes them, against raw PyMySQL
   `executemany` of the same rows as ready-made tuples (1,000 a batch and a COMMIT), measured
   right before and after each writer run, as `sidecar_throughput.py` does; the ratio is the
   median over `--runs` (goal >= 0.8).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402
from ceilings import raw_executemany_rate  # noqa: E402  (benchmarks/ceilings.py)
from sqlalchemy import create_engine, select, text  # noqa: E402

from ingestion_pipelines.feeds.binance.replay.depth_server import BinanceDepthServer  # noqa: E402
from ingestion_pipelines.storage.engines import ensure_schema  # noqa: E402
from ingestion_pipelines.storage.tables import worker_state  # noqa: E402
from ingestion_pipelines.storage.types import json_text  # noqa: E402

SYMBOLS = [f"DEPTH{i:02d}USDT" for i in range(20)]
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid: int) -> int:
    """User + system ticks of `pid` and its children (the writer process)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total


def _details(url: str) -> dict:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(worker_state.c.details).where(worker_state.c.worker_id == "binance_depth")
            ).scalar_one_or_none()
    except Exception:  # noqa: BLE001 - not migrated yet
        return {}
    finally:
        engine.dispose()
    if isinstance(row, str):
        row = orjson.loads(row)
    return row or {}


def _count(url: str, table: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
    finally:
        engine.dispose()


def books_run(url: str, seconds: float) -> dict:
    """Part 1 (see module doc)."""
    server = BinanceDepthServer(symbols=SYMBOLS, interval_s=0.1).start()
    env = dict(os.environ)
    env.update(
        INGEST_DATABASE_URL=url,
        INGEST_BINANCE_DEPTH__BASE_URL=server.url,
        INGEST_BINANCE_DEPTH__REST_BASE_URL=server.rest_url,
        INGEST_BINANCE_DEPTH__SYMBOLS=",".join(s.lower() for s in SYMBOLS),
        INGEST_BINANCE_DEPTH__SNAPSHOT_MS="100",
        INGEST_DAGSTER_URL="http://127.0.0.1:9",
        INGEST_SIDECAR_HTTP_PORT="0",
        INGEST_LOG_LEVEL="WARNING",
    )
    log = Path(env["INGEST_LOCAL_DIR"]) / "sidecar.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingestion_pipelines.sidecar", "--feeds", "binance_depth"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while _details(url).get("books_synced") != len(SYMBOLS):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the books never synced; see {log}")
            time.sleep(0.5)
        stored_before = _count(url, "order_book_snapshot")
        cpu_before, wall_before = _cpu_ticks(proc.pid), time.monotonic()
        time.sleep(seconds)
        cpu = (_cpu_ticks(proc.pid) - cpu_before) / TICKS / (time.monotonic() - wall_before)
        time.sleep(2)  # one more health report, covering the window
        details = _details(url)
        stored = _count(url, "order_book_snapshot") - stored_before
    finally:
        proc.terminate()
        proc.wait(30)
        server.stop()
    return {
        "cpu_cores": cpu,
        "p50": details.get("book_event_to_applied_ms_p50"),
        "p99": details.get("book_event_to_applied_ms_p99"),
        "arrival_p50": details.get("book_arrival_to_applied_ms_p50"),
        "arrival_p99": details.get("book_arrival_to_applied_ms_p99"),
        "stored_per_s": stored / seconds,
        "resyncs": details.get("resyncs"),
        "events": details.get("book_events_applied"),
    }


def snapshot_rows(n: int, first_id: int) -> list[dict]:
    """`n` order_book_snapshot rows as the feed builds them (top 20 a side)."""
    at = datetime.now(UTC)
    bids = [[f"{43210 - i * 0.01:.8f}", f"{1 + i / 1000:.8f}"] for i in range(20)]
    asks = [[f"{43210.01 + i * 0.01:.8f}", f"{2 + i / 1000:.8f}"] for i in range(20)]
    return [
        {
            "source": "binance",
            "symbol": "BENCHUSDT",
            "last_update_id": first_id + i,
            "at": at + timedelta(microseconds=i),
            "bids": bids,
            "asks": asks,
        }
        for i in range(n)
    ]


def raw_ceiling(url: str, n: int, first_id: int) -> float:
    """Raw PyMySQL executemany of ready-made tuples, 1,000 a batch and a COMMIT."""
    rows = snapshot_rows(n, first_id)
    tuples = [
        (
            r["source"],
            r["symbol"],
            r["last_update_id"],
            r["at"].replace(tzinfo=None),
            json_text(r["bids"]),
            json_text(r["asks"]),
        )
        for r in rows
    ]
    sql = (
        "INSERT INTO order_book_snapshot (source, symbol, last_update_id, at, bids, asks) "
        "VALUES (%s, %s, %s, %s, %s, %s)"
    )
    return raw_executemany_rate(url, sql, tuples)


def writer_rate(url: str, n: int, first_id: int) -> float:
    """The sidecar's writer: rows submitted as the feed submits them, to the last commit."""
    from ingestion_pipelines.core.settings import local_data_dir
    from ingestion_pipelines.sidecar.spool import Spool
    from ingestion_pipelines.sidecar.writer import Writer

    rows = snapshot_rows(n, first_id)
    writer = Writer(
        url, spools=lambda key: Spool(local_data_dir() / "spool" / key), live_bars=False
    ).start()
    try:
        start = time.perf_counter()
        for i in range(0, n, 20):  # one tick's due books at a time (20 symbols)
            while not writer.submit(
                "binance_depth", "order_book_snapshot", rows[i : i + 20], "ignore"
            ):
                time.sleep(0.001)
        writer.flush(120)
        return n / (time.perf_counter() - start)
    finally:
        writer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3, help="writer runs (0: part 1 only)")
    args = parser.parse_args()
    os.environ.setdefault("INGEST_LOCAL_DIR", tempfile.mkdtemp(prefix="depth-bench-"))
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    server = None
    url = args.database_url
    if url is None:
        from ingestion_pipelines_tests.testbed.mariadb import MariaDBServer

        server = MariaDBServer().start()
        url = server.url(server.create_database("depth_bench"))
    try:
        ensure_schema(url).dispose()
        books = books_run(url, args.seconds)
        raws = [raw_ceiling(url, args.rows, 10**9)]
        writes = []
        for run in range(1, args.runs + 1):
            writes.append(writer_rate(url, args.rows, 10**9 * (2 * run)))
            raws.append(raw_ceiling(url, args.rows, 10**9 * (2 * run + 1)))
    finally:
        if server is not None:
            server.close()
    ratios = [w / statistics.mean(raws[i : i + 2]) for i, w in enumerate(writes)] or [0.0]
    print()
    print(
        f"20 symbols x 100 ms for {args.seconds:.0f} s: sidecar + writer CPU "
        f"{books['cpu_cores']:.2f} cores (goal < 1); arrival->applied p50 "
        f"{books['arrival_p50']} ms, p99 {books['arrival_p99']} ms (goal <= 50 ms); "
        f"send (E)->applied p50 {books['p50']} ms, p99 {books['p99']} ms; "
        f"{books['stored_per_s']:.0f} books stored/s; "
        f"{books['events']} events applied; {books['resyncs']} resyncs"
    )
    print(
        "raw executemany ceiling (rows/s, around each run): " + ", ".join(f"{r:,.0f}" for r in raws)
    )
    print("sidecar writer (rows/s): " + ", ".join(f"{w:,.0f}" for w in writes))
    print(
        f"snapshot writes / raw ceiling: {statistics.median(ratios):.2f}x (median of "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + ") (goal >= 0.80)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
