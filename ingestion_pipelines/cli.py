"""`ingest`: the command line. Thin: each command calls into the packages that do the work."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _print_json(data) -> None:
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def cmd_db_upgrade(args) -> int:
    from ingestion_pipelines.core.redaction import redact_url
    from ingestion_pipelines.core.settings import get_settings
    from ingestion_pipelines.storage.migrate import upgrade

    url = args.database_url or get_settings().database_url
    revision = upgrade(url)
    print(f"{redact_url(url)}: at revision {revision}")
    return 0


def cmd_db_current(args) -> int:
    from ingestion_pipelines.core.redaction import redact_url
    from ingestion_pipelines.core.settings import get_settings
    from ingestion_pipelines.storage.migrate import current_revision, head_revision

    url = args.database_url or get_settings().database_url
    current = current_revision(url)
    print(f"{redact_url(url)}: at revision {current or 'none'} (head {head_revision()})")
    return 0 if current == head_revision() else 1


def cmd_db_revision(args) -> int:
    from ingestion_pipelines.storage.revision import RevisionError, generate_revision

    try:
        path = generate_revision(
            args.message, database_url=args.database_url, allow_empty=args.empty
        )
    except RevisionError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 1
    print(f"generated {path}: review it, then `ingest db upgrade`")
    return 0


def cmd_db_check(args) -> int:
    from ingestion_pipelines.core.redaction import redact_url
    from ingestion_pipelines.core.settings import get_settings
    from ingestion_pipelines.storage.schema_drift import schema_drift

    url = args.database_url or get_settings().database_url
    found = schema_drift(url)
    for line in found:
        print(line)
    print(f"{redact_url(url)}: {len(found)} difference(s) from the schema declaration")
    return 1 if found else 0


def _run_config(pairs: Sequence[str] | None) -> dict:
    overrides = {}
    for pair in pairs or ():
        key, _, value = pair.partition("=")
        try:
            overrides[key] = json.loads(value)
        except ValueError:
            overrides[key] = value
    return overrides


def cmd_config_get(args) -> int:
    from ingestion_pipelines.config.chain import ConfigChain

    value = ConfigChain(dereference=False).get(args.worker, args.key, _run_config(args.run_config))
    if args.json:
        _print_json(
            {
                "worker_id": args.worker,
                "key": args.key,
                "value": value.display(),
                "layer": value.layer,
            }
        )
    else:
        print(f"{value.display()}\t({value.layer})")
    return 0


def cmd_config_list(args) -> int:
    from ingestion_pipelines.config.chain import ConfigChain

    resolved = ConfigChain(dereference=False).resolve(args.worker, _run_config(args.run_config))
    if args.json:
        _print_json(
            [
                {"key": v.key, "value": v.display(), "layer": v.layer}
                for v in resolved.values.values()
            ]
        )
        return 0
    width = max(len(k) for k in resolved.values)
    for value in resolved.values.values():
        print(f"{value.key:<{width}}  {value.display():<40}  {value.layer}")
    for corrupt in resolved.corrupt:
        print(f"warning: {corrupt.describe()}", file=sys.stderr)
    return 0


def cmd_workers(args) -> int:
    from ingestion_pipelines.config.workers import catalogue

    workers = catalogue()
    if args.json:
        _print_json([{"worker_id": w.worker_id, "kind": w.kind} for w in workers.values()])
    else:
        for spec in workers.values():
            print(f"{spec.worker_id:<20} {spec.kind:<10} {spec.description}")
    return 0


def cmd_replay(args) -> int:
    from ingestion_pipelines.standins.serve import main as replay_main

    return replay_main(args)


def cmd_sidecar(args) -> int:
    from ingestion_pipelines.sidecar.__main__ import main as sidecar_main

    return sidecar_main(args.sidecar_args)


def cmd_live(args) -> int:
    from ingestion_pipelines.live.serve import serve

    return serve(args.host, args.port, args.heartbeat, args.database_url)


def cmd_live_token(args) -> int:
    from ingestion_pipelines.core.settings import get_settings
    from ingestion_pipelines.live.auth import mint_token

    secret = get_settings().live_jwt_secret
    if not secret:
        print("ingest: INGEST_LIVE_JWT_SECRET is not set: no token to sign", file=sys.stderr)
        return 2
    try:
        print(mint_token(secret, args.sub, args.role, args.ttl))
    except ValueError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_retention(args) -> int:
    from ingestion_pipelines.core.settings import get_settings
    from ingestion_pipelines.storage.engines import ensure_schema
    from ingestion_pipelines.storage.retention import (
        lower_priority,
        retention_pass,
        throttle_defaults,
    )

    pause_ratio, nice = throttle_defaults(args.pause_ratio, args.nice)
    lower_priority(nice)
    engine = ensure_schema(args.database_url or get_settings().database_url)
    result = retention_pass(
        engine,
        args.table,
        args.older_than_days,
        archive_url=args.archive_url,
        pause_ratio=pause_ratio,
    )
    days = [
        {
            "day": d.day,
            "archived": d.archived,
            "deleted": d.deleted,
            "file": d.file and d.file.url,
            "by_partition": d.by_partition,
        }
        for d in result.days
    ]
    if args.json:
        _print_json({"table": args.table, "before": result.cutoff, "days": days})
        return 0
    for day in days:
        print(
            f"{args.table} {day['day']}: {day['archived']} archived to {day['file']}, "
            f"{day['deleted']} deleted"
            + (" (its day partition dropped)" if day["by_partition"] else "")
        )
    print(
        f"{args.table}: {result.archived} rows older than {result.cutoff:%Y-%m-%d} archived, "
        f"{result.deleted} deleted"
    )
    return 0


def cmd_archive_restore(args) -> int:
    from datetime import date

    from ingestion_pipelines.core.settings import get_settings
    from ingestion_pipelines.storage.archive import restore_day
    from ingestion_pipelines.storage.engines import ensure_schema
    from ingestion_pipelines.storage.retention import retention_table

    found = retention_table(args.table)
    if found is None:
        print(f"ingest: no table {args.table} in this schema", file=sys.stderr)
        return 2
    engine = ensure_schema(args.database_url or get_settings().database_url)
    result = restore_day(engine, found[0], date.fromisoformat(args.day), args.archive_url)
    print(
        f"{args.table} {args.day}: {result.inserted} restored, {result.updated} updated, "
        f"{result.unchanged} already there"
    )
    return 0


def cmd_metrics(args) -> int:
    from ingestion_pipelines.control.metrics import serve

    return serve(args.host, args.port, args.dagster_url)


def _add_ops_commands(sub) -> None:
    """`ingest retention`, `ingest archive restore`, `ingest metrics` (issue 22)."""
    p = sub.add_parser("retention", help="one retention pass now: archive old rows, then delete")
    p.add_argument("--table", required=True, help="execution_log, dead_letter, trade_tick, ...")
    p.add_argument("--older-than-days", type=int, required=True)
    p.add_argument("--archive-url", help="default: INGEST_ARCHIVE_URL (<local dir>/archive)")
    p.add_argument("--database-url", help="default: INGEST_DATABASE_URL")
    p.add_argument(
        "--pause-ratio",
        type=float,
        help="after each page or delete batch, wait this times its duration (spares live "
        "writers; default INGEST_RETENTION_PAUSE_RATIO, 0.5)",
    )
    p.add_argument(
        "--nice",
        type=int,
        help="run at this niceness at least (default INGEST_RETENTION_NICE, 10; 0: as started)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_retention)

    archive = sub.add_parser("archive", help="retention archives").add_subparsers(
        dest="archive_command", required=True
    )
    p = archive.add_parser("restore", help="put an archived day back (idempotent upsert)")
    p.add_argument("--table", required=True)
    p.add_argument("--day", required=True, help="UTC day, YYYY-MM-DD")
    p.add_argument("--archive-url", help="default: INGEST_ARCHIVE_URL (<local dir>/archive)")
    p.add_argument("--database-url", help="default: INGEST_DATABASE_URL")
    p.set_defaults(func=cmd_archive_restore)

    p = sub.add_parser("metrics", help="serve the crawls' Prometheus metrics at /metrics")
    p.add_argument("--host", help="default: INGEST_METRICS_HOST (127.0.0.1)")
    p.add_argument("--port", type=int, help="default: INGEST_METRICS_PORT (8792)")
    p.add_argument("--dagster-url", help="default: INGEST_DAGSTER_URL")
    p.set_defaults(func=cmd_metrics)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ingest", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True
    )
    for name, func, text in (
        ("upgrade", cmd_db_upgrade, "create or migrate every table"),
        ("current", cmd_db_current, "show the schema revision (exit 1 when behind)"),
    ):
        p = db.add_parser(name, help=text)
        p.add_argument("--database-url", help="default: INGEST_DATABASE_URL")
        p.set_defaults(func=func)
    p = db.add_parser(
        "check", help="compare the database with the schema declaration (exit 1 on a difference)"
    )
    p.add_argument("--database-url", help="default: INGEST_DATABASE_URL")
    p.set_defaults(func=cmd_db_check)
    p = db.add_parser(
        "revision", help="generate the next migration from the schema declaration (autogenerate)"
    )
    p.add_argument("-m", "--message", required=True, help="what the migration does")
    p.add_argument(
        "--database-url",
        help="compare this database (at head) instead of a new SQLite one migrated to head",
    )
    p.add_argument(
        "--empty", action="store_true", help="write the revision even with nothing to migrate"
    )
    p.set_defaults(func=cmd_db_revision)

    config = sub.add_parser("config", help="the config chain").add_subparsers(
        dest="config_command", required=True
    )
    p = config.add_parser("get", help="resolved value of a key and the layer it came from")
    p.add_argument("worker")
    p.add_argument("key")
    p.set_defaults(func=cmd_config_get)
    p = config.add_parser("list", help="every key of a worker with its value and layer")
    p.add_argument("worker")
    p.set_defaults(func=cmd_config_list)
    for p in (config.choices["get"], config.choices["list"]):
        p.add_argument(
            "--run-config", action="append", metavar="KEY=VALUE", help="a run-config layer value"
        )
        p.add_argument("--json", action="store_true")

    from ingestion_pipelines.control.cli import add_commands

    add_commands(
        sub, config
    )  # status, start, stop, trigger, backfill, stats, health, config set|unset

    p = sub.add_parser("workers", help="every worker with its kind")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_workers)

    p = sub.add_parser("replay", help="serve the bundled recordings of every source on 127.0.0.1")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, default=8700)
    p.add_argument("--binance-port", type=int, default=8701)
    p.add_argument("--ssi-port", type=int, default=8702)
    p.add_argument("--rate", type=float, default=5.0, help="Binance trades per second per symbol")
    # Behaviours of the real servers, off by default, so that they stay testable by hand too.
    p.add_argument(
        "--fmarket-page-cap", type=int, help="fmarket: apply this page size whatever is asked"
    )
    p.add_argument(
        "--nav-history-days-before",
        type=int,
        help="fmarket: get-nav-history also returns this many days before fromDate",
    )
    p.add_argument(
        "--fng-stamp-hour", type=int, help="alternative.me: stamp each day at this UTC hour"
    )
    p.add_argument(
        "--ssi-recording",
        help="SSI: serve a recorded variant instead of the session (97-fields, derivatives)",
    )
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("sidecar", help="run the feed workers until SIGTERM/SIGINT", add_help=False)
    p.add_argument("sidecar_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_sidecar)

    p = sub.add_parser(
        "live", help="SSE (/stream) and WebSocket (/ws) relays of ticks, bars, progress; page at /"
    )
    p.add_argument("--host", help="default: INGEST_LIVE_HOST (127.0.0.1)")
    p.add_argument("--port", type=int, help="default: INGEST_LIVE_PORT (8790)")
    p.add_argument("--heartbeat", type=float, help="seconds between heartbeats (default 15)")
    p.add_argument(
        "--database-url", help="where /bars reads trade_bar_1m (default: INGEST_DATABASE_URL)"
    )
    p.set_defaults(func=cmd_live)
    token = p.add_subparsers(dest="live_command").add_parser(
        "token", help="print a signed token for the live relay (INGEST_LIVE_JWT_SECRET)"
    )
    token.add_argument("--sub", required=True, help="who the token is for")
    token.add_argument("--role", choices=["viewer", "operator"], default="viewer")
    token.add_argument("--ttl", type=int, default=3600, help="seconds it is valid (default 3600)")
    token.set_defaults(func=cmd_live_token)
    _add_ops_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ingestion_pipelines.config.chain import ConfigError
    from ingestion_pipelines.core.redaction import redact
    from ingestion_pipelines.storage.archive import ArchiveError
    from ingestion_pipelines.storage.logs import ensure_logging

    ensure_logging("ingest-cli", to_database=False)
    try:
        return args.func(args)
    except ArchiveError as exc:
        print(f"ingest: {redact(str(exc))}", file=sys.stderr)
        return 1
    except (ConfigError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"ingest: {redact(str(message))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
