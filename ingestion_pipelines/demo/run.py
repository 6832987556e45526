"""`make demo` / `make up`: the whole stack in the foreground (Dagster webserver and daemon, the
sidecar), against the bundled replay (`--replay`) or the live sources. Ctrl-C stops it all."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from ingestion_pipelines.core.settings import PROJECT_ROOT, get_settings
from ingestion_pipelines.demo.live import LivePage, start_live_page

# In the demo every schedule ticks every two minutes, so runs and rows show up at once.
DEMO_CRON = "*/2 * * * *"
# A source whose replay holds one recorded day runs that day first; a tick would ask a day the
# recording does not hold (binance_klines' own cron is every 15 minutes): once a year instead.
RECORDED_DAY_CRON = "0 0 1 1 *"
# How long a reader's first run waits for its writers' before it is launched anyway.
FIRST_WAVE_WAIT_S = 600
_ENDED = {"SUCCESS", "FAILURE", "CANCELED"}
# The first runs leave the queue before any tick's (Dagster dequeues higher priorities first):
# a tick may come while they wait, and they are what makes the demo green. A reader's, launched
# once its writers' ended, before the other first runs still queued: it is the last to start.
FIRST_RUN_PRIORITY, READER_PRIORITY = "10", "11"


def _processes(env: dict[str, str], port: int) -> list[tuple[str, list[str]]]:
    bin_dir = Path(sys.executable).parent
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    return [
        (
            "dagster-webserver",
            [
                str(bin_dir / "dagster-webserver"),
                "-w",
                workspace,
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
        ),
        ("dagster-daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", workspace]),
        ("sidecar", [sys.executable, "-m", "ingestion_pipelines.sidecar"]),
    ]


def _prepare_instance(env: dict[str, str]) -> None:
    """Create (or migrate) the Dagster instance's SQLite storage before its processes start: the
    webserver and the daemon would otherwise race to create it in a fresh DAGSTER_HOME."""
    dagster = Path(sys.executable).parent / "dagster"
    subprocess.run(
        [str(dagster), "instance", "migrate"],
        env=env,
        cwd=PROJECT_ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _first_runs(dagster_url: str, stop: threading.Event) -> None:
    """Once the webserver answers, run every scheduled worker once, without waiting for ticks: a
    worker that reads another's rows (`vn_stock_eod` reads `vn_stocks`' `stock`) as soon as the
    first runs of its writers have ended, the others at once."""
    from ingestion_pipelines.config.workers import catalogue
    from ingestion_pipelines.dagster_api.client import DagsterClient
    from ingestion_pipelines.storage.declared import upstream_workers

    client = DagsterClient(dagster_url)
    declared = upstream_workers()
    workers = [w for w, spec in catalogue().items() if spec.kind == "scheduled"]
    upstream = {w: [u for u in declared.get(w, ()) if u in workers] for w in workers}
    read = {u for w in workers for u in upstream[w]}
    # the writers others wait for first: the queue runs a few at a time
    first = sorted((w for w in workers if not upstream[w]), key=lambda w: w not in read)
    launched = _launch(client, first, stop, FIRST_RUN_PRIORITY)
    if launched is None:
        return
    readers, ended = [w for w in workers if upstream[w]], set()
    give_up_at = time.monotonic() + FIRST_WAVE_WAIT_S  # then launched anyway: they fail clearly
    while readers and not stop.wait(2.0):
        awaited = {u for w in readers for u in upstream[w]} - ended
        ended |= _ended(client, {w: r for w, r in launched.items() if w in awaited})
        ready = [w for w in readers if all(u in ended or u not in launched for u in upstream[w])]
        if not ready and time.monotonic() > give_up_at:
            ready = readers
        if ready:
            launched.update(_launch(client, ready, stop, READER_PRIORITY) or {})
            readers = [w for w in readers if w not in ready]


def _launch(
    client, workers: list[str], stop: threading.Event, priority: str
) -> dict[str, str] | None:
    """Trigger each worker once (at Dagster's queue `priority`); their run ids, or None when the
    webserver never answered."""
    from ingestion_pipelines.control.commands.launch import trigger
    from ingestion_pipelines.dagster_api.client import ControlError

    give_up_at = time.monotonic() + 120
    workers, run_ids = list(workers), {}
    while workers and not stop.is_set():
        try:
            run = trigger(
                client,
                workers[0],
                partition=_first_partition(workers[0]),
                extra_tags={"dagster/priority": priority},
            )
        except ControlError as exc:  # the webserver or its code location is still starting
            if time.monotonic() > give_up_at:
                print(f"  first runs not launched: {exc}", file=sys.stderr, flush=True)
                return None
            stop.wait(2.0)  # ask again soon; a launched run goes on to the next at once
            continue
        except Exception as exc:  # noqa: BLE001 - say why, keep the demo running
            print(f"  could not run {workers.pop(0)} now: {exc}", file=sys.stderr, flush=True)
            continue
        run_ids[workers[0]] = run.get("run_id")
        print(f"  first run of {workers.pop(0)}: {run.get('run_id')}", flush=True)
    return run_ids


def _ended(client, run_ids: dict[str, str]) -> set[str]:
    """The workers whose run has ended, asked in one request (a busy webserver: none this
    round): the webserver answering it is also the one launching the runs."""
    ids = [r for r in run_ids.values() if r]
    if not ids:
        return set()
    try:
        data = client.execute("WorkerRuns", {"filter": {"runIds": ids}, "limit": len(ids)})
        status = {r["runId"]: r["status"] for r in data["runsOrError"]["results"]}
    except Exception:  # noqa: BLE001 - ask again next round
        return set()
    return {w for w, r in run_ids.items() if status.get(r) in _ENDED}


def _say_when_ready(url: str, stop: threading.Event) -> None:
    """In the background: what the UI still waits for, then when it is really ready."""
    from ingestion_pipelines.control.ready import wait_until_ready

    say = lambda text: print(text, flush=True)  # noqa: E731
    threading.Thread(
        target=wait_until_ready, args=(url, stop), kwargs={"say": say}, daemon=True
    ).start()


def _first_partition(worker_id: str) -> str | None:
    """The partition a first run collects: for a dataset with a publication deadline (the NAV),
    the latest day already published; otherwise the newest partition (None)."""
    from datetime import UTC, datetime

    from ingestion_pipelines.vnmarket import calendar as market_calendar

    recorded = recorded_partitions().get(worker_id)
    if recorded is not None:
        return recorded
    if market_calendar.deadline(worker_id) is None:
        return None
    return market_calendar.latest_due_day(worker_id, datetime.now(UTC)).isoformat()


def recorded_partitions() -> dict[str, str]:
    """Partitioned YAML sources and the day their recorded payload holds (`expect.partition`):
    their replay serves that day's recording whatever window is asked, so the demo runs that
    day and sets their schedule to RECORDED_DAY_CRON (a tick today would find no rows). A source
    whose replay has a simulator (``replay.simulator``) serves any day: it is not pinned."""
    from ingestion_pipelines.sources.declared import declared_sources

    return {
        worker_id: str(source.spec.expect["partition"])
        for worker_id, source in declared_sources().items()
        if source.partitions is not None
        and "partition" in (source.spec.expect or {})
        and not (source.spec.replay or {}).get("simulator")
    }


def _settle_config(database_url: str, replay_env: dict[str, str] | None) -> None:
    """The demo's settings into the config chain (signed rows, so `ingest config get` in any
    shell tells the truth); against the live sources, the demo's rows removed."""
    from ingestion_pipelines.demo.config import clear_demo_config, write_demo_config

    if replay_env is None:
        removed = clear_demo_config(database_url)
        if removed:
            print(f"  removed {removed} worker_config row(s) left by the demo", flush=True)
        return
    demo_env = {**replay_env, "INGEST_CRON": os.environ.get("INGEST_CRON", DEMO_CRON)}
    for worker_id in recorded_partitions():  # run once on their recorded day (see there)
        demo_env.setdefault(f"INGEST_{worker_id.upper()}__CRON", RECORDED_DAY_CRON)
    for worker, key, old, new in write_demo_config(database_url, demo_env):
        print(f"  config {worker or 'global'}.{key}: {old} -> {new}", flush=True)


def _live_line(live: LivePage, env: dict[str, str]) -> str:
    if live.url is None:
        return f"No live page: {live.why_not}"
    if env.get("INGEST_LIVE_JWT_SECRET"):
        mint = "`ingest live token --sub you --role operator`"
        return f"Live page at {live.url}?token=<a token from {mint}>"
    return f"Live page at {live.url}   (trades, bars and run progress as they happen)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingestion_pipelines.demo.run")
    parser.add_argument(
        "--replay", action="store_true", help="serve and use the bundled recordings"
    )
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument(
        "--live-port",
        type=int,
        default=None,
        help="the live page's port (default: INGEST_LIVE_PORT, 8790)",
    )
    parser.add_argument(
        "--replay-port",
        type=int,
        default=8700,
        help="with --replay: HTTP sources on this port, Binance on the next, SSI on the one after",
    )
    args = parser.parse_args(argv)

    settings = get_settings()
    home = settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "INGEST_DAGSTER_URL": f"http://127.0.0.1:{args.port}",
    }

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    replay_env: dict[str, str] | None = None
    with ExitStack() as stack:
        if args.replay:
            from ingestion_pipelines.standins.serve import replay_all

            base = args.replay_port
            replay_env = stack.enter_context(
                replay_all(http_port=base, binance_port=base + 1, ssi_port=base + 2)
            )
        from ingestion_pipelines.storage.migrate import upgrade

        database_url = env.get("INGEST_DATABASE_URL") or settings.database_url
        upgrade(database_url)
        _settle_config(database_url, replay_env)
        live = start_live_page(stack, env, args.live_port or settings.live_port)
        _prepare_instance(env)
        children = []
        for name, command in _processes(env, args.port):
            children.append((name, subprocess.Popen(command, env=env, cwd=PROJECT_ROOT)))
            print(f"  starting {name} (pid {children[-1][1].pid})", flush=True)
        url = f"http://127.0.0.1:{args.port}"
        print(f"\n  Dagster UI soon at {url}   (Ctrl-C stops everything)", flush=True)
        print(f"  {_live_line(live, env)}\n", flush=True)
        _say_when_ready(url, stop)
        threading.Thread(target=_first_runs, args=(url, stop), daemon=True).start()
        while not stop.wait(1.0):
            for name, child in children:
                if child.poll() is not None:
                    print(f"{name} exited with {child.returncode}; stopping", file=sys.stderr)
                    stop.set()
        for _, child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
