"""Retention throughput, and what it costs the sidecar: N old `trade_tick` rows on MariaDB are
archived to Parquet, verified and deleted while the sidecar commits live trades.

    .venv/bin/python benchmarks/retention.py [--rows 10000000] [--database-url mysql+pymysql://...]

Without `--database-url` a throw-away MariaDB is started (the test bed's `MariaDBServer`).
Measured in the same run, in this order:

1. load N trades dated 40 days ago (one UTC day, 10 symbols) with plain `executemany`;
2. the raw read rate of the same rows: one streaming `SELECT *` of that day through PyMySQL,
   no type processing (the yardstick: goal retention >= 0.5x this);
3. the sidecar (the real `Sidecar`, writer process on, as `ingest sidecar` runs it) committing
   trades paced at `--rate` msg/s from a Binance-protocol server in its own process, in chunks,
   with no retention running: p99 send->commit latency (baseline);
4. `ingest retention --table trade_tick --older-than-days 30` in its own process (as the scheduled
   job would run it), while the sidecar goes on committing: rows/s of the whole pass (read pages,
   Parquet write, read-back verification, batched deletes) and of its archive part alone, and the
   sidecar's p99 during the pass;
5. the sidecar again after the pass (second half of the baseline).

Goals (issue 22): retention rows/s >= 0.5x the raw read rate; sidecar p99 during retention within
20 % of the baseline's.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sidecar_throughput import SYMBOL, RemoteServer  # noqa: E402

OLD_SYMBOLS = [f"OLD{n}USDT" for n in range(10)]


def load_old_rows(url: str, rows: int, day: datetime) -> float:
    """Insert `rows` trades of `day` (plain executemany, 10,000 a batch); seconds taken."""
    import pymysql
    from sqlalchemy.engine import make_url

    u = make_url(url)
    conn = pymysql.connect(
        host=u.host, port=u.port, user=u.username, password=u.password or "", database=u.database
    )
    sql = (
        "INSERT INTO trade_tick (source, symbol, trade_id, price, quantity, side, traded_at, "
        "received_at, extra) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    step = 86_400_000_000 // max(rows, 1)  # microseconds between trades over the day
    naive_day = day.replace(tzinfo=None)
    started = time.perf_counter()
    with conn.cursor() as cursor:
        for first in range(0, rows, 10_000):
            batch = []
            for n in range(first, min(rows, first + 10_000)):
                at = naive_day + timedelta(microseconds=n * step)
                batch.append(
                    (
                        "binance",
                        OLD_SYMBOLS[n % 10],
                        n,
                        f"{60000 + (n % 5000) / 100:.2f}",
                        f"0.{n % 100000:05d}123",
                        "buy" if n % 2 else "sell",
                        at,
                        at,
                        '{"M":true}',
                    )
                )
            cursor.executemany(sql, batch)
            conn.commit()
    conn.close()
    return time.perf_counter() - started


def raw_read_rate(url: str, day: datetime) -> tuple[int, float]:
    """(rows, rows/s) of one streaming SELECT of the day's rows, no type processing."""
    import pymysql
    import pymysql.cursors
    from sqlalchemy.engine import make_url

    u = make_url(url)
    conn = pymysql.connect(
        host=u.host,
        port=u.port,
        user=u.username,
        password=u.password or "",
        database=u.database,
        cursorclass=pymysql.cursors.SSCursor,
    )
    start, end = day.replace(tzinfo=None), (day + timedelta(days=1)).replace(tzinfo=None)
    began = time.perf_counter()
    count = 0
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT * FROM trade_tick WHERE traded_at >= %s AND traded_at < %s", (start, end)
        )
        while chunk := cursor.fetchmany(20_000):
            count += len(chunk)
    conn.close()
    return count, count / (time.perf_counter() - began)


def _retention_process(url: str, archive: str, pause_ratio: float, out) -> None:
    from ingestion_pipelines.storage import retention
    from ingestion_pipelines.storage.engines import ensure_schema

    engine = ensure_schema(url)
    marks = {}

    def published(_file) -> None:
        marks["published"] = time.perf_counter()

    began = time.perf_counter()
    result = retention.retention_pass(
        engine,
        "trade_tick",
        30,
        archive_url=archive,
        after_publish=published,
        pause_ratio=pause_ratio,
    )
    ended = time.perf_counter()
    out.send(
        {
            "archived": result.archived,
            "deleted": result.deleted,
            "seconds": ended - began,
            "archive_seconds": marks.get("published", ended) - began,
            "files": [d.file.url for d in result.days if d.file],
        }
    )


class LiveSidecar:
    """The real sidecar fed by a Binance-protocol server in its own process; send->commit
    latencies measured per chunk from the server's send stamps."""

    def __init__(self, url: str):
        from ingestion_pipelines.sidecar.runner import Sidecar, SidecarOptions

        self.commits: list[tuple[float, list[int]]] = []
        self.committed = 0
        self.server = RemoteServer(symbols=[SYMBOL], rate=0, ping_interval=None, paused=True)
        os.environ["INGEST_BINANCE_TRADES__BASE_URL"] = self.server.url
        os.environ["INGEST_BINANCE_TRADES__REST_BASE_URL"] = self.server.rest_url
        os.environ["INGEST_BINANCE_TRADES__SYMBOLS"] = SYMBOL.lower()
        options = SidecarOptions(
            database_url=url,
            feeds=["binance_trades"],
            writer={"on_commit": self._on_commit},
            writer_process=True,
        )
        self.sidecar = Sidecar(options)
        self.thread = threading.Thread(target=self.sidecar.run, daemon=True)
        self.thread.start()
        assert self.server.call("subscribed")

    def _on_commit(self, _feed, table, rows, at) -> None:
        if table == "trade_tick":
            self.commits.append((at, [row["trade_id"] for row in rows]))
            self.committed += len(rows)

    def chunk(self, n: int, rate: int) -> list[float]:
        """Send `n` trades at `rate`/s; their send->commit latencies (seconds)."""
        self.commits.clear()
        before = self.committed
        _started, sent_ms = self.server.call("bench", n, rate)
        deadline = time.time() + 120
        while self.committed - before < n and time.time() < deadline:
            time.sleep(0.01)
        return [at - sent_ms[i] / 1000 for at, ids in self.commits for i in ids if i in sent_ms]

    def close(self) -> None:
        self.sidecar.request_stop()
        self.thread.join(15)
        self.server.close()


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(len(ordered) * 0.99)] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rate", type=int, default=1_000, help="sidecar msg/s during the run")
    parser.add_argument("--chunk", type=int, default=5_000, help="trades per latency chunk")
    parser.add_argument(
        "--pause-ratio", type=float, default=0.0, help="retention's throttle (0: none)"
    )
    parser.add_argument("--baseline-chunks", type=int, default=4, help="before and after each")
    args = parser.parse_args()
    os.environ.setdefault("INGEST_LOCAL_DIR", tempfile.mkdtemp(prefix="retention-bench-"))
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    server = None
    url = args.database_url
    if url is None:
        from ingestion_pipelines_tests.testbed.mariadb import MariaDBServer

        server = MariaDBServer().start()
        url = server.url(server.create_database("retention_bench"))
    from ingestion_pipelines.storage.engines import ensure_schema

    ensure_schema(url)
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=40)
    archive = tempfile.mkdtemp(prefix="retention-archive-")
    try:
        load_s = load_old_rows(url, args.rows, day)
        print(f"loaded {args.rows:,} rows in {load_s:,.0f} s", flush=True)
        read_rows, raw_rate = raw_read_rate(url, day)
        assert read_rows == args.rows, read_rows
        print(f"raw read: {raw_rate:,.0f} rows/s", flush=True)

        live = LiveSidecar(url)
        print("sidecar up; baseline chunks", flush=True)
        before = [x for _ in range(args.baseline_chunks) for x in live.chunk(args.chunk, args.rate)]
        ctx = mp.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        worker = ctx.Process(target=_retention_process, args=(url, archive, args.pause_ratio, send))
        worker.start()
        print(f"baseline p99 {_p99(before):,.0f} ms; retention started", flush=True)
        during = []
        while worker.is_alive() and not receive.poll():
            during += live.chunk(args.chunk, args.rate)
        result = receive.recv()
        worker.join(30)
        print(f"retention done: {result}", flush=True)
        after = [x for _ in range(args.baseline_chunks) for x in live.chunk(args.chunk, args.rate)]
        live.close()
    finally:
        if server is not None:
            server.close()
    assert result["archived"] == result["deleted"] == args.rows, result
    rate = result["archived"] / result["seconds"]
    archive_rate = result["archived"] / result["archive_seconds"]
    baseline = _p99(before + after)
    under = _p99(during) if during else float("nan")
    size = sum(Path(f).stat().st_size for f in result["files"])
    print()
    print("| measure | value |")
    print("|---|---:|")
    print(f"| old `trade_tick` rows | {args.rows:,} (pause ratio {args.pause_ratio}) |")
    print(f"| raw read (streaming SELECT, PyMySQL, no type processing) | {raw_rate:,.0f} rows/s |")
    print(
        f"| retention pass: read pages + Parquet + verify + delete "
        f"({result['seconds']:,.0f} s) | {rate:,.0f} rows/s ({rate / raw_rate:.2f}x raw) |"
    )
    print(
        f"| of which archive (read + Parquet + verify, {result['archive_seconds']:,.0f} s) "
        f"| {archive_rate:,.0f} rows/s ({archive_rate / raw_rate:.2f}x raw) |"
    )
    print(f"| Parquet size | {size / 1e6:,.1f} MB ({size / args.rows:.1f} B/row) |")
    print(
        f"| sidecar p99 send->commit at {args.rate:,} msg/s, no retention "
        f"({len(before) + len(after):,} trades) | {baseline:,.0f} ms |"
    )
    print(
        f"| sidecar p99 send->commit during retention ({len(during):,} trades) "
        f"| {under:,.0f} ms ({under / baseline - 1:+.0%}) |"
    )
    print()
    print(
        f"retention / raw read: {rate / raw_rate:.2f}x (goal >= 0.5); sidecar p99 during "
        f"retention vs without: {under / baseline - 1:+.0%} (goal within +20 %); "
        f"median send->commit {statistics.median(during or [0]) * 1000:,.0f} ms during, "
        f"{statistics.median(before + after) * 1000:,.0f} ms without"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
