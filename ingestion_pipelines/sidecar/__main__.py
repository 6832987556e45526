"""`ingest sidecar` / `python -m ingestion_pipelines.sidecar`: run the feed workers in the
foreground until SIGTERM or SIGINT, then flush everything and exit 0 (within 10 s)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from loguru import logger

from ingestion_pipelines.core.settings import get_settings
from ingestion_pipelines.sidecar.runner import Sidecar, SidecarOptions
from ingestion_pipelines.sidecar.spool import DEFAULT_MAX_BYTES
from ingestion_pipelines.storage.logs import setup_logging, shutdown_logging


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The sidecar's command line (`ingest sidecar` passes its arguments through)."""
    parser = argparse.ArgumentParser(prog="ingest sidecar", description=__doc__)
    parser.add_argument("--feeds", help="comma-separated feed ids (default: every registered feed)")
    parser.add_argument("--database-url", help="overrides INGEST_DATABASE_URL")
    parser.add_argument("--redis-url", help="overrides INGEST_REDIS_URL")
    parser.add_argument("--dagster-url", help="overrides INGEST_DAGSTER_URL")
    parser.add_argument(
        "--spool-max-bytes",
        type=int,
        default=int(os.environ.get("INGEST_SPOOL_MAX_BYTES") or DEFAULT_MAX_BYTES),
        help="disk budget of each feed's spool while the database is down (default 1 GiB)",
    )
    parser.add_argument(
        "--report-interval-s",
        type=float,
        default=float(os.environ.get("INGEST_SIDECAR_REPORT_INTERVAL_S") or 180),
        help="seconds between materialization reports to Dagster (default 180)",
    )
    parser.add_argument(
        "--symbols-per-shard",
        type=int,
        default=int(os.environ.get("INGEST_SIDECAR_SYMBOLS_PER_SHARD") or 0),
        help="split each feed's symbols into shards of this many, shared by the replicas on "
        "Redis (default 0: as many as the source allows on one connection)",
    )
    parser.add_argument(
        "--http-port",
        type=int,
        help="port of /healthz, /readyz and /metrics; 0: off (overrides INGEST_SIDECAR_HTTP_PORT)",
    )
    parser.add_argument(
        "--writer-thread",
        action="store_true",
        help="write from a thread of this process instead of a writer process of its own "
        "(one core for receiving, parsing and writing)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the sidecar until SIGTERM/SIGINT; the process exit code."""
    args = parse_args(argv)
    settings = get_settings()
    database_url = args.database_url or settings.database_url
    setup_logging("sidecar", database_url=database_url)
    options = SidecarOptions(
        database_url=database_url,
        redis_url=args.redis_url if args.redis_url is not None else settings.redis_url,
        dagster_url=args.dagster_url or settings.dagster_url,
        feeds=[f.strip() for f in args.feeds.split(",") if f.strip()] if args.feeds else None,
        spool_max_bytes=args.spool_max_bytes,
        report_interval_s=args.report_interval_s,
        symbols_per_shard=args.symbols_per_shard,
        http_host=settings.sidecar_http_host,
        http_port=args.http_port if args.http_port is not None else settings.sidecar_http_port,
        writer_process=not args.writer_thread,
    )
    try:
        sidecar = Sidecar(options)
    except ValueError as exc:
        logger.error(str(exc))
        shutdown_logging()
        return 2

    def on_signal(signum, _frame) -> None:
        logger.info("{} received: stopping", signal.Signals(signum).name)
        sidecar.request_stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    logger.info("sidecar starting: feeds {}", ", ".join(sidecar.classes))
    try:
        code = sidecar.run()
    finally:
        shutdown_logging(timeout_s=1.5)
    return code


if __name__ == "__main__":
    sys.exit(main())
