"""Retention throughput, and what it costs the sidecar: N old `trade_tick` rows on MariaDB are
archived to Parquet, verified and deleted while the sidecar commits live trades.

    .venv/bin/python benchmarks/retention.py [--rows 10000000] [--pause-ratios 0,1]
        [--database-url mysql+pymysql://...]

Without `--database-url` a throw-away MariaDB is started (the test bed's `MariaDBServer`).
Each throttle setting of `--pause-ratios` gets its own UTC day of N rows (40, 41, ... days back).
Measured in the same run, in this order:

1. load N trades per day (10 symbols) with plain `executemany`;
2. the sidecar (the real `Sidecar`, writer process on, as `ingest sidecar` runs it) committing
   trades paced at `--rate` msg/s from a Binance-protocol server in its own process, in chunks,
   with no retention running: p99 send->commit latency (baseline, before and after);
3. per setting, side by side on that day's rows: the raw read rate (one streaming `SELECT *`
   through PyMySQL, once with its usual conversions (Decimal, datetime: the yardstick, goal
   retention >= 0.5x this) and once with decimals and times left as text (PyMySQL's own
   ceiling; the archive reads its pages with connectorx)); then the retention pass of that day
   (`retention.archive_day`, as `ingest retention` runs it, in its own process) while the
   sidecar goes on committing: rows/s of the whole pass (read pages, Parquet write, read-back
   verification, then the day's removal: its partition exchanged out, counted, dropped and folded
   into p_old, or for a `/r` setting, whose day is not a partition, batched row deletes) and of
   its archive part alone, and the sidecar's p99 during it.

The load average is printed with every phase: the machines this runs on are shared.
Goals (issue 22): retention rows/s >= 0.5x the raw read rate; sidecar p99 during retention within
20 % of the baseline's.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
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


def _old_row(n: int, first_id: int, naive_day: datetime, step: int) -> tuple:
    at = naive_day + timedelta(microseconds=n * step)
    return (
        "binance",
        OLD_SYMBOLS[n % 10],
        first_id + n,
        f"{60000 + (n % 5000) / 100:.2f}",
        f"0.{n % 100000:05d}123",
        "buy" if n % 2 else "sell",
        at,
        at,
        '{"M":true}',
    )


def _connect_pg(url: str, **kwargs):
    import psycopg2
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return psycopg2.connect(
        host=u.host,
        port=u.port,
        user=u.username,
        password=u.password or "",
        dbname=u.database,
        **kwargs,
    )


def _load_old_rows_pg(url: str, rows: int, day: datetime, first_id: int) -> float:
    """PostgreSQL: the same rows by COPY, 100,000 a batch."""
    import io

    conn = _connect_pg(url)
    step = 86_400_000_000 // max(rows, 1)
    naive_day = day.replace(tzinfo=None)
    columns = "source, symbol, trade_id, price, quantity, side, traded_at, received_at, extra"
    started = time.perf_counter()
    with conn.cursor() as cursor:
        for first in range(0, rows, 100_000):
            lines = io.StringIO()
            for n in range(first, min(rows, first + 100_000)):
                row = _old_row(n, first_id, naive_day, step)
                lines.write("\t".join(str(v) for v in row) + "\n")
            lines.seek(0)
            cursor.copy_expert(f"COPY trade_tick ({columns}) FROM STDIN", lines)
            conn.commit()
    conn.close()
    return time.perf_counter() - started


def load_old_rows(url: str, rows: int, day: datetime, first_id: int = 0) -> float:
    """Insert `rows` trades of `day`, ids from `first_id` (plain executemany, 10,000 a batch;
    PostgreSQL: COPY); seconds taken."""
    import pymysql
    from sqlalchemy.engine import make_url

    if url.startswith("postgresql"):
        return _load_old_rows_pg(url, rows, day, first_id)
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
            batch = [
                _old_row(n, first_id, naive_day, step)
                for n in range(first, min(rows, first + 10_000))
            ]
            cursor.executemany(sql, batch)
            conn.commit()
    conn.close()
    return time.perf_counter() - started


def _raw_read_rate_pg(url: str, day: datetime, as_text: bool) -> tuple[int, float]:
    """PostgreSQL: the same through a psycopg2 server-side cursor (`as_text`: numerics and
    timestamps kept as the server's text)."""
    import psycopg2.extensions as ext

    conn = _connect_pg(url)
    if as_text:
        keep = ext.new_type((1700, 1114, 1184), "KEEP_TEXT", lambda value, _cursor: value)
        ext.register_type(keep, conn)
    start, end = day.replace(tzinfo=None), (day + timedelta(days=1)).replace(tzinfo=None)
    began = time.perf_counter()
    count = 0
    with conn.cursor(name="raw_read") as cursor:
        cursor.itersize = 20_000
        cursor.execute(
            "SELECT * FROM trade_tick WHERE traded_at >= %s AND traded_at < %s", (start, end)
        )
        while chunk := cursor.fetchmany(20_000):
            count += len(chunk)
    conn.close()
    return count, count / (time.perf_counter() - began)


def raw_read_rate(url: str, day: datetime, *, as_text: bool = False) -> tuple[int, float]:
    """(rows, rows/s) of one streaming SELECT of the day's rows through PyMySQL, no SQLAlchemy;
    `as_text`: decimals and times left as the server's text (no Python parsing). PostgreSQL:
    through psycopg2, the same way."""
    if url.startswith("postgresql"):
        return _raw_read_rate_pg(url, day, as_text)
    import pymysql
    import pymysql.cursors
    from pymysql.converters import conversions, through
    from sqlalchemy.engine import make_url

    from ingestion_pipelines.storage.archive_pages import _TEXT_FIELD_TYPES

    u = make_url(url)
    conv = {**conversions, **dict.fromkeys(_TEXT_FIELD_TYPES, through)} if as_text else None
    conn = pymysql.connect(
        host=u.host,
        port=u.port,
        user=u.username,
        password=u.password or "",
        database=u.database,
        cursorclass=pymysql.cursors.SSCursor,
        conv=conv,
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


def _retention_process(url: str, archive: str, day, options: dict, out) -> None:
    from loguru import logger

    from ingestion_pipelines.storage import partitions, retention
    from ingestion_pipelines.storage.engines import ensure_schema
    from ingestion_pipelines.storage.tables import trade_tick

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    if options.pop("nice", False):
        os.nice(10)
    engine = ensure_schema(url)
    marks = {}

    def published(_file) -> None:
        marks["published"] = time.perf_counter()

    began = time.perf_counter()  # CLOCK_MONOTONIC: comparable with the parent's stamps
    result = retention.archive_day(
        engine,
        trade_tick,
        "traded_at",
        day.date(),
        archive_url=archive,
        after_publish=published,
        **options,
    )
    # as a pass ends: the emptied day partition folded into p_old (refused, and said, while p_old
    # holds more than a few rows: run the `/r` settings first, whose days are in p_old)
    partitions.merge_retired(engine, trade_tick, day.date() + timedelta(days=1))
    ended = time.perf_counter()
    out.send(
        {
            "archived": result.archived,
            "deleted": result.deleted,
            "began": began,
            "published": marks.get("published", ended),
            "ended": ended,
            "file": result.file.url if result.file else None,
            "by_partition": result.by_partition,
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


def _size_server(url: str, buffer_pool_mb: int, redo_log_mb: int) -> None:
    """Resize the throw-away server's buffer pool and redo log (both dynamic in MariaDB 10.11)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        if buffer_pool_mb:
            conn.execute(text(f"SET GLOBAL innodb_buffer_pool_size = {buffer_pool_mb << 20}"))
        if redo_log_mb:
            conn.execute(text(f"SET GLOBAL innodb_log_file_size = {redo_log_mb << 20}"))
        sizes = conn.execute(
            text("SELECT @@innodb_buffer_pool_size >> 20, @@innodb_log_file_size >> 20")
        ).one()
    engine.dispose()
    print(f"MariaDB: buffer pool {sizes[0]} MB, redo log {sizes[1]} MB", flush=True)


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(len(ordered) * 0.99)] * 1000 if ordered else float("nan")


def _load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def _settings(text: str) -> list[dict]:
    """`0,1,1n,0.5n/p5000/d500,0.5n/r`: pause ratios, `n` = the retention process also at nice
    10; `/pN` and `/dN` give that setting its own page rows and delete rows; `/r`: its day is
    not a partition (it stays in `p_old`), so its rows are deleted row by row, as on a database
    without partitions."""
    out = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        ratio, *sizes = item.split("/")
        setting = {"pause_ratio": float(ratio.rstrip("n")), "nice": ratio.endswith("n")}
        for size in sizes:
            if size == "r":
                setting["by_rows"] = True
                continue
            setting[{"p": "page_rows", "d": "delete_rows"}[size[0]]] = int(size[1:])
        out.append(setting)
    return out


def _days(url: str, settings: list[dict]) -> list[datetime]:
    """Each setting's day, 40 or more days back: the days of partition settings are made day
    partitions; the `/r` settings' days are older than all of them, in `p_old`."""
    from ingestion_pipelines.storage import partitions
    from ingestion_pipelines.storage.engines import ensure_schema
    from ingestion_pipelines.storage.tables import trade_tick

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    by_rows = [n for n, s in enumerate(settings) if s.get("by_rows")]
    order = [n for n in range(len(settings)) if n not in by_rows] + by_rows
    days: list[datetime] = [today] * len(settings)
    for back, n in enumerate(order):
        days[n] = today - timedelta(days=40 + back)
    parted = [days[n].date() for n in order if n not in by_rows]
    if parted:
        made = partitions.ensure_day_partitions(
            ensure_schema(url), trade_tick, min(parted), max(parted)
        )
        assert set(parted) <= set(made), (parted, made)
    return days


def _running(start: float, end: float, stops: list[tuple[float, float]]) -> float:
    """Seconds of [start, end] outside the stopped intervals."""
    stopped = sum(max(0.0, min(end, b) - max(start, a)) for a, b in stops)
    return end - start - stopped


def _retention_under_load(live, url, archive, day, options, args):
    """One day's pass in its own process while the sidecar commits. Paired (`--paired`): the
    pass is stopped (SIGSTOP) every other chunk, so chunks with and without retention alternate
    under the same background load; its rows/s count only the time it was let run."""
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    worker = ctx.Process(target=_retention_process, args=(url, archive, day, options, send))
    worker.start()
    during, off, stops, chunks = [], [], [], []
    while worker.is_alive() and not receive.poll():
        began = time.perf_counter()
        latencies = live.chunk(args.chunk, args.rate)
        during += latencies
        chunks.append((began, time.perf_counter(), latencies))
        if args.paired and worker.is_alive() and not receive.poll():
            os.kill(worker.pid, signal.SIGSTOP)
            stopped = time.perf_counter()
            off += live.chunk(args.chunk, args.rate)
            stops.append((stopped, time.perf_counter()))
            os.kill(worker.pid, signal.SIGCONT)
    result = receive.recv()
    worker.join(30)
    result["seconds"] = _running(result["began"], result["ended"], stops)
    result["archive_seconds"] = _running(result["began"], result["published"], stops)
    # the running chunks that fell wholly in the archive part, and wholly in the deletes
    result["archiving"] = [x for a, b, c in chunks if b <= result["published"] for x in c]
    result["deleting"] = [x for a, b, c in chunks if a >= result["published"] for x in c]
    return result, during, off


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url")
    parser.add_argument(
        "--database",
        choices=["mariadb", "postgres"],
        default="mariadb",
        help="the throw-away server started without --database-url",
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="old rows per setting")
    parser.add_argument("--rate", type=int, default=1_000, help="sidecar msg/s during the run")
    parser.add_argument("--chunk", type=int, default=5_000, help="trades per latency chunk")
    parser.add_argument(
        "--pause-ratios",
        default="0",
        help="throttle settings, one day each: pause ratios, `n` suffix = also nice 10, "
        "`/pN` `/dN` page and delete rows, `/r` its day deleted by rows, not a partition "
        "(0,1,1n,0.5n/p5000/d500,0.5n/r)",
    )
    parser.add_argument("--page-rows", type=int, default=None, help="default: archive_day's")
    parser.add_argument("--delete-rows", type=int, default=None, help="default: archive_day's")
    parser.add_argument(
        "--paired",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stop the pass every other chunk: latencies with and without it side by side",
    )
    parser.add_argument(
        "--buffer-pool-mb",
        type=int,
        default=0,
        help="throw-away server: InnoDB buffer pool (default: the test bed's 64 MB)",
    )
    parser.add_argument(
        "--redo-log-mb",
        type=int,
        default=0,
        help="throw-away server: InnoDB redo log (default: the test bed's 32 MB)",
    )
    parser.add_argument("--baseline-chunks", type=int, default=4, help="before and after each")
    args = parser.parse_args()
    os.environ.setdefault("INGEST_LOCAL_DIR", tempfile.mkdtemp(prefix="retention-bench-"))
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    settings = _settings(args.pause_ratios)
    sizes = {"page_rows": args.page_rows, "delete_rows": args.delete_rows}
    sizes = {k: v for k, v in sizes.items() if v}
    server = None
    url = args.database_url
    if url is None and args.database == "postgres":
        from ingestion_pipelines_tests.testbed.postgres import PostgresServer

        server = PostgresServer().start()
        url = server.url(server.create_database("retention_bench"))
        print("PostgreSQL: the test bed's settings (--buffer-pool-mb/--redo-log-mb: MariaDB only)")
    elif url is None:
        from ingestion_pipelines_tests.testbed.mariadb import MariaDBServer

        server = MariaDBServer().start()
        url = server.url(server.create_database("retention_bench"))
        _size_server(url, args.buffer_pool_mb, args.redo_log_mb)
    from ingestion_pipelines.storage.engines import ensure_schema

    ensure_schema(url)
    days = _days(url, settings)
    archive = tempfile.mkdtemp(prefix="retention-archive-")
    runs = []
    try:
        for n, day in enumerate(days):
            load_s = load_old_rows(url, args.rows, day, n * args.rows)
            print(f"loaded {args.rows:,} rows of {day:%Y-%m-%d} in {load_s:,.0f} s", flush=True)
        live = LiveSidecar(url)
        print(f"sidecar up; baseline chunks ({_load()})", flush=True)
        before = [x for _ in range(args.baseline_chunks) for x in live.chunk(args.chunk, args.rate)]
        print(f"baseline p99 {_p99(before):,.0f} ms ({_load()})", flush=True)
        for day, setting in zip(days, settings, strict=True):
            read_rows, raw_rate = raw_read_rate(url, day)
            assert read_rows == args.rows, read_rows
            _, text_rate = raw_read_rate(url, day, as_text=True)
            live.chunk(args.rate // 5, args.rate)  # not measured: wakes a feed silent meanwhile
            load_before = _load()
            options = {**sizes, **{k: v for k, v in setting.items() if k != "by_rows"}}
            result, during, off = _retention_under_load(live, url, archive, day, options, args)
            run = {
                **setting,
                **result,
                "raw": raw_rate,
                "text": text_rate,
                "during": during,
                "off": off,
                "load": f"{load_before[5:]} / {_load()[5:]}",
            }
            runs.append(run)
            print(
                f"{setting}: raw {raw_rate:,.0f} rows/s, text {text_rate:,.0f}; pass "
                f"{result['seconds']:,.1f} s ({result['archived'] / result['seconds'] / raw_rate:.2f}x"
                f" raw), p99 during {_p99(during):,.0f} ms (archiving {_p99(result['archiving']):,.0f}, "
                f"deleting {_p99(result['deleting']):,.0f}), stopped {_p99(off):,.0f} ms "
                f"({run['load']})",
                flush=True,
            )
        after = [x for _ in range(args.baseline_chunks) for x in live.chunk(args.chunk, args.rate)]
        print(f"baseline after p99 {_p99(after):,.0f} ms ({_load()})", flush=True)
        live.close()
    finally:
        if server is not None:
            server.close()
    _report(args, runs, before, after)
    return 0


def _report(args, runs: list[dict], before: list[float], after: list[float]) -> None:
    baseline = _p99(before + after)
    print()
    print(
        f"{args.rows:,} old `trade_tick` rows per setting; sidecar at {args.rate:,} msg/s; p99 "
        f"send->commit without retention {baseline:,.0f} ms ({len(before) + len(after):,} trades; "
        f"before {_p99(before):,.0f} ms, after {_p99(after):,.0f} ms), median "
        f"{statistics.median(before + after) * 1000:,.0f} ms"
    )
    print()
    print(
        "| pause ratio | raw read rows/s (as text) | whole pass rows/s (x raw; x text) "
        "| archive part rows/s (x raw) | delete part: rows/s (s) | sidecar p99: running / stopped "
        "(paired) | vs before+after | medians running / stopped | load avg before / after |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for run in runs:
        assert run["archived"] == run["deleted"] == args.rows, run
        rate = run["archived"] / run["seconds"]
        archive_rate = run["archived"] / run["archive_seconds"]
        delete_seconds = run["seconds"] - run["archive_seconds"]
        delete_rate = run["deleted"] / delete_seconds
        under, off = _p99(run["during"]), _p99(run["off"])
        label = f"{run['pause_ratio']:g}" + (" + nice 10" if run["nice"] else "")
        label += "".join(f", {k} {run[k]:,}" for k in ("page_rows", "delete_rows") if k in run)
        label += ", day partition dropped" if run["by_partition"] else ", rows deleted"
        print(
            f"| {label} | {run['raw']:,.0f} ({run['text']:,.0f}) | {rate:,.0f} "
            f"({rate / run['raw']:.2f}x; {rate / run['text']:.2f}x) "
            f"| {archive_rate:,.0f} ({archive_rate / run['raw']:.2f}x) "
            f"| {delete_rate:,.0f} ({delete_seconds:,.1f} s) "
            f"| {under:,.0f} / {off:,.0f} ms (**{under / off - 1:+.0%}**; "
            f"{len(run['during']):,} / {len(run['off']):,} trades) "
            f"| {under / baseline - 1:+.0%} "
            f"| {statistics.median(run['during'] or [0]) * 1000:,.0f} / "
            f"{statistics.median(run['off'] or [0]) * 1000:,.0f} ms | {run['load']} |"
        )
    size = sum(Path(run["file"]).stat().st_size for run in runs) / len(runs)
    print(f"\nParquet (zstd): {size / 1e6:,.1f} MB a day, {size / args.rows:.1f} B/row")


if __name__ == "__main__":
    sys.exit(main())
