"""The control-plane commands of `ingest`, registered on the main parser by `add_commands`.

    sub = parser.add_subparsers(dest="command")
    config_sub = sub.add_parser("config").add_subparsers(dest="config_command")
    add_commands(sub, config_sub)      # status start stop trigger backfill stats health,
                                       # config set / config unset

Exit codes: 0 ok, 1 failure (a run failed, something unhealthy, Dagster unreachable),
2 usage or configuration error (nothing was changed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from typing import Any

from ingestion_pipelines.control import render


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def _client(args):
    from ingestion_pipelines.dagster_api.client import DagsterClient

    return DagsterClient(args.dagster_url)


def _guard(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from ingestion_pipelines.config.chain import ConfigError
        from ingestion_pipelines.control.commands.common import UsageError
        from ingestion_pipelines.core.redaction import redact
        from ingestion_pipelines.dagster_api.client import ControlError

        try:
            return func(args)
        except (UsageError, ConfigError, KeyError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            print(f"ingest {args.command}: {redact(str(message))}", file=sys.stderr)
            return 2
        except ControlError as exc:
            print(f"ingest {args.command}: {redact(str(exc))}", file=sys.stderr)
            return 1

    run.__name__ = func.__name__
    return run


def _waiting(args, client, label: str):
    """The progress display of a `--wait` (a bar on a terminal, else a line every 10 s);
    nothing for `--json` or without `--wait`."""
    if args.json or not args.wait:
        return contextlib.nullcontext(None)
    from ingestion_pipelines.control.progress import WaitProgress

    return WaitProgress(client, label)


@_guard
def cmd_status(args) -> int:
    from ingestion_pipelines.control.commands.status import status

    workers = status(_client(args), args.worker)
    if args.json:
        _print_json(workers)
    else:
        print(render.status_table(workers))
    return 0


def _switch(on: bool):
    @_guard
    def cmd(args) -> int:
        from ingestion_pipelines.control.commands.switch import set_switch

        result = set_switch(_client(args), args.worker, on)
        if args.json:
            _print_json(result)
        else:
            print(render.switch_result(result))
        return 0 if result["ok"] else 1

    return cmd


@_guard
def cmd_trigger(args) -> int:
    from ingestion_pipelines.control.commands.launch import trigger

    client = _client(args)
    with _waiting(args, client, args.worker) as progress:
        result = trigger(
            client,
            args.worker,
            partition=args.partition,
            wait=args.wait,
            timeout_s=args.timeout,
            on_poll=progress.poll if progress else None,
        )
    if args.json:
        _print_json(result)
    elif args.wait:
        print(render.run_result(result))
    else:
        part = f" partition {result['partition']}" if result.get("partition") else ""
        print(f"{args.worker}: launched run {result['run_id']} ({result['job']}{part})")
    return 0 if not args.wait or result["status"] == "SUCCESS" else 1


@_guard
def cmd_backfill(args) -> int:
    from ingestion_pipelines.control.commands.launch import backfill

    client = _client(args)
    with _waiting(args, client, f"{args.worker} {args.start}..{args.end}") as progress:
        result = backfill(
            client,
            args.worker,
            args.start,
            args.end,
            wait=args.wait,
            timeout_s=args.timeout,
            on_poll=progress.poll if progress else None,
        )
    if args.json:
        _print_json(result)
    elif args.wait:
        print(render.backfill_result(result))
    else:
        print(f"{args.worker}: backfill {result['backfill_id']} ({result['from']}..{result['to']})")
    return 0 if not args.wait or result.get("ok") else 1


@_guard
def cmd_stats(args) -> int:
    from ingestion_pipelines.control.commands.stats import stats

    result = stats(_client(args), args.worker, since=args.since)
    if args.json:
        _print_json(result)
    else:
        print(render.stats_result(result))
    return 0


@_guard
def cmd_health(args) -> int:
    from ingestion_pipelines.control.commands.health import health

    result = health(_client(args))
    if args.json:
        _print_json(result)
    else:
        print(render.health_result(result))
    return 0 if result["healthy"] else 1


def _config(unset: bool):
    @_guard
    def cmd(args) -> int:
        from ingestion_pipelines.control.commands.config import config_change

        result = config_change(
            _client(args),
            args.worker,
            args.key,
            None if unset else args.value,
            unset=unset,
            timeout_s=args.timeout,
        )
        if args.json:
            _print_json(result)
        else:
            print(render.config_result(result))
        return 0 if result["status"] == "SUCCESS" else 1

    return cmd


def _common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--dagster-url", help="default: INGEST_DAGSTER_URL (http://127.0.0.1:3000)")
    return p


def add_commands(sub, config_sub=None) -> None:
    """Register the control-plane commands on `ingest`'s subparsers (and `config set|unset` on
    the `config` group's subparsers, when given)."""
    p = _common(sub.add_parser("status", help="every worker's switch, last run, data, next tick"))
    p.add_argument("worker", nargs="?")
    p.set_defaults(func=cmd_status)

    for name, on, text in (
        ("start", True, "turn a worker on: its schedule, or its feed (the sidecar follows)"),
        ("stop", False, "turn a worker off: its schedule, or its feed (the sidecar follows)"),
    ):
        p = _common(sub.add_parser(name, help=text))
        p.add_argument("worker")
        p.set_defaults(func=_switch(on))

    p = _common(sub.add_parser("trigger", help="collect now (a run of the worker's job)"))
    p.add_argument("worker")
    p.add_argument("--partition", help="partitioned workers: the day (default: the newest)")
    p.add_argument("--wait", action="store_true", help="wait; exit 1 unless the run succeeds")
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait at most")
    p.set_defaults(func=cmd_trigger)

    p = _common(sub.add_parser("backfill", help="a partition backfill FROM..TO (inclusive)"))
    p.add_argument("worker")
    p.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD")
    p.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD")
    p.add_argument("--wait", action="store_true", help="wait; exit 1 unless it succeeds")
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait at most")
    p.set_defaults(func=cmd_backfill)

    p = _common(sub.add_parser("stats", help="runs, records per run, durations, recent errors"))
    p.add_argument("worker")
    p.add_argument("--since", default="7d", help="30m, 12h, 7d, 2w or a date (default 7d)")
    p.set_defaults(func=cmd_stats)

    p = _common(sub.add_parser("health", help="webserver, daemons, code, feeds, database, Redis"))
    p.set_defaults(func=cmd_health)

    if config_sub is not None:
        p = _common(
            config_sub.add_parser(
                "set", help="change a value through the audited Dagster job config_change"
            )
        )
        p.add_argument("worker", help="worker id, or `global` for the global row")
        p.add_argument("key")
        p.add_argument("value", help='JSON (5, true, ["a"]) or plain text')
        p.add_argument("--timeout", type=float, default=300)
        p.set_defaults(func=_config(False), command="config")
        p = _common(
            config_sub.add_parser(
                "unset", help="delete a worker_config row (audited job config_change)"
            )
        )
        p.add_argument("worker", help="worker id, or `global` for the global row")
        p.add_argument("key")
        p.add_argument("--timeout", type=float, default=300)
        p.set_defaults(func=_config(True), command="config")
