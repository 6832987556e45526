"""The control plane end to end: a real dagster-webserver and dagster-daemon (the project's
workspace and dagster.yaml, a temporary DAGSTER_HOME, SQLite), the replay server as every
source, and a local webhook receiving alerts. Every `ingest` command is observed to take
effect in Dagster (raw GraphQL) and in the database.

The tests run in file order and share the stack (one per module).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select

from ingestion_pipelines.config.workers import catalogue
from ingestion_pipelines.replay.http_server import ReplayServer
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema
from ingestion_pipelines.storage.tables import (
    crypto_market_snapshot,
    fear_greed_index,
    worker_config,
    worker_state,
)
from ingestion_pipelines_tests.control.helpers import (
    ProjectStack,
    WebhookServer,
    ingest,
    project_workspace,
)
from ingestion_pipelines_tests.fakes.dagster_stack import wait_until

SECRET = "s3cr3tT0ken"
SELECTOR = {"repositoryLocationName": "ingestion_pipelines", "repositoryName": "__repository__"}

SCHEDULE_STATUS = """
query ($s: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $s) { ... on Schedule { scheduleState { status } } }
}"""
SENSOR_STATUS = """
query ($s: SensorSelector!) {
  sensorOrError(sensorSelector: $s) {
    ... on Sensor { sensorState { status ticks(limit: 1) { timestamp status } } }
  }
}"""
RUNS = """
query ($f: RunsFilter) {
  runsOrError(filter: $f) {
    ... on Runs { results { runId jobName status tags { key value } updateTime endTime } }
  }
}"""


class Env:
    def __init__(self, stack: ProjectStack, database_url: str, replay, hooks):
        self.stack = stack
        self.database_url = database_url
        self.replay = replay
        self.hooks = hooks

    def engine(self):
        return ensure_schema(self.database_url)

    def gql(self, query: str, **variables):
        return self.stack.graphql(query, variables)

    def schedule_status(self, name: str) -> str:
        data = self.gql(SCHEDULE_STATUS, s={**SELECTOR, "scheduleName": name})
        return data["scheduleOrError"]["scheduleState"]["status"]

    def sensor(self, name: str) -> dict:
        data = self.gql(SENSOR_STATUS, s={**SELECTOR, "sensorName": name})
        return data["sensorOrError"]["sensorState"]

    def runs(self, **filter_) -> list[dict]:
        return self.gql(RUNS, f=filter_)["runsOrError"]["results"]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("control_stack")
    database_url = f"sqlite:///{root / 'ingest.db'}"
    ensure_schema(database_url)
    replay = ReplayServer().start()
    hooks = WebhookServer()
    stack_env = {
        **replay.env(),
        "INGEST_DATABASE_URL": database_url,
        "INGEST_LOCAL_DIR": str(root / "local"),
        "INGEST_ALERT_INTERVAL_S": "2",
        # secrets live in the workers' environment; worker_config names the variables
        "FG_ALERT_HOOK": f"{hooks.url}/fg?token={SECRET}",
        "GLOBAL_ALERT_HOOK": f"slack+{hooks.url}/slack",
    }
    stack = ProjectStack(
        project_workspace(root / "workspace"), root=root / "dagster", env=stack_env
    )
    try:
        stack.start()
        stack.wait_for_daemon(90)
        yield Env(stack, database_url, replay, hooks)
    finally:
        stack.close()
        replay.stop()
        hooks.close()
        dispose_all()


@pytest.fixture(autouse=True)
def _point_at_stack(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_DAGSTER_URL", env.stack.url)
    monkeypatch.setenv("INGEST_DATABASE_URL", env.database_url)


def _config_rows(env: Env, worker_id: str | None, key: str) -> list[dict]:
    scope = (
        worker_config.c.worker_id == worker_id if worker_id else worker_config.c.worker_id.is_(None)
    )
    with env.engine().connect() as conn:
        query = select(worker_config).where(scope, worker_config.c.key == key)
        return [dict(r) for r in conn.execute(query).mappings()]


# ---- switches and health --------------------------------------------------------------------


def test_feeds_stop_start_and_health(env: Env) -> None:
    # the project's feeds (tests register workers of their own, e.g. test_config's chain_feed)
    feeds = [
        w
        for w, spec in catalogue().items()
        if spec.kind == "feed" and spec.settings.__module__.startswith("ingestion_pipelines.")
    ]
    assert {"binance_trades", "ssi_iboard"} <= set(feeds)
    for feed in feeds:
        out = ingest("stop", feed)
        assert out.code == 0, out.err
        assert "STOPPED" in out.out
        wait_until(
            lambda: env.sensor(f"{feed}_feed")["status"] == "STOPPED",  # noqa: B023
            15,
            interval_s=0.5,
            what=f"{feed}_feed stopped",
        )

    # No sidecar runs here: with every feed off, everything else must come up healthy.
    result = wait_until(
        lambda: (o := ingest("health", "--json")).code == 0 and o,
        90,
        interval_s=1,
        what="ingest health to pass",
    )
    checks = {c["name"]: c for c in result.json()["checks"]}
    assert checks["webserver"]["ok"]
    assert any(n.startswith("daemon SENSOR") for n in checks)
    assert any(n.startswith("daemon SCHEDULER") for n in checks)
    assert checks["code location ingestion_pipelines"]["ok"]
    assert checks["database"]["ok"] and checks["redis"]["ok"]
    assert "switched off" in checks["feed binance_trades"]["detail"]

    out = ingest("start", "binance_trades", "--json")
    assert out.code == 0 and out.json()["switch"]["status"] == "RUNNING"
    assert env.sensor("binance_trades_feed")["status"] == "RUNNING"
    unhealthy = ingest("health")
    assert unhealthy.code == 1
    assert "UNHEALTHY" in unhealthy.out
    assert "FAIL  feed binance_trades" in unhealthy.out
    assert ingest("stop", "binance_trades").code == 0


def test_status_lists_every_worker(env: Env) -> None:
    out = ingest("status", "--json")
    assert out.code == 0, out.err
    workers = {w["worker_id"]: w for w in out.json()}
    assert {"fmarket_nav", "fear_greed", "binance_trades", "trade_bars_1m"} <= set(workers)
    fg = workers["fear_greed"]
    assert fg["kind"] == "scheduled" and fg["enabled"] is True
    assert fg["switch"] == {"type": "schedule", "name": "fear_greed_schedule", "status": "RUNNING"}
    assert fg["schedule"]["next_tick"] > datetime.now(UTC).isoformat()
    assert workers["binance_trades"]["switch"]["status"] == "STOPPED"
    assert workers["binance_trades"]["feed"] == {"state": "never reported"}
    text = ingest("status", "fear_greed")
    assert text.code == 0
    assert text.out.startswith("fear_greed  [scheduled]  on")
    assert "next tick" in text.out


def test_stop_and_start_a_schedule(env: Env) -> None:
    out = ingest("stop", "fear_greed")
    assert out.code == 0, out.err
    assert env.schedule_status("fear_greed_schedule") == "STOPPED"
    status = ingest("status", "fear_greed", "--json").json()[0]
    assert status["enabled"] is False and status["schedule"]["next_tick"] is None
    assert ingest("start", "fear_greed").code == 0
    assert env.schedule_status("fear_greed_schedule") == "RUNNING"


# ---- config ---------------------------------------------------------------------------------


def test_config_set_refuses_invalid_values_before_launching(env: Env) -> None:
    before = len(env.runs(pipelineName="config_change"))
    out = ingest("config", "set", "fear_greed", "timeout_s", "-1")
    assert out.code == 2
    assert "timeout_s" in out.err and "greater than 0" in out.err
    out = ingest("config", "set", "fear_greed", "no_such_key", "1")
    assert out.code == 2 and "unknown key" in out.err
    out = ingest("config", "set", "nobody", "timeout_s", "1")
    assert out.code == 2 and "unknown worker" in out.err
    assert _config_rows(env, "fear_greed", "timeout_s") == []
    assert len(env.runs(pipelineName="config_change")) == before


def test_config_set_is_an_audited_run(env: Env) -> None:
    out = ingest("config", "set", "fear_greed", "timeout_s", "7", "--json")
    assert out.code == 0, out.err
    result = out.json()
    assert result["status"] == "SUCCESS"
    assert (result["old"], result["new"]) == ("null", "7")
    [row] = _config_rows(env, "fear_greed", "timeout_s")
    assert row["value"] == 7
    assert result["run_id"][:8] in row["updated_by"]
    [run] = env.runs(runIds=[result["run_id"]])
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["ingest/worker"] == "fear_greed"
    assert tags["ingest/config_key"] == "timeout_s"
    assert tags["ingest/requested_by"] == result["requested_by"]

    text = ingest("config", "set", "fear_greed", "timeout_s", "9")
    assert text.code == 0
    assert "config fear_greed.timeout_s set: 7 -> 9" in text.out
    out = ingest("config", "unset", "fear_greed", "timeout_s", "--json")
    assert out.code == 0 and out.json()["old"] == "9"
    assert _config_rows(env, "fear_greed", "timeout_s") == []


def test_config_set_webhooks_masks_secrets(env: Env) -> None:
    hook = f"{env.hooks.url}/fg?token={SECRET}"
    out = ingest("config", "set", "fear_greed", "alert_webhook", hook)
    assert out.code != 0 and "secret" in out.out + out.err  # a literal never travels
    assert SECRET not in out.out + out.err
    out = ingest("config", "set", "fear_greed", "alert_webhook", "env:FG_ALERT_HOOK")
    assert out.code == 0, out.err
    out = ingest("config", "set", "global", "alert_webhook", "env:GLOBAL_ALERT_HOOK")
    assert out.code == 0, out.err
    [row] = _config_rows(env, None, "alert_webhook")
    assert row["value"] == {"env": "GLOBAL_ALERT_HOOK"}
    assert _config_rows(env, "fear_greed", "alert_webhook")[0]["value"] == {"env": "FG_ALERT_HOOK"}


# ---- runs -----------------------------------------------------------------------------------


def test_trigger_waits_for_a_successful_run(env: Env) -> None:
    out = ingest("trigger", "coingecko_markets", "--wait", "--json")
    assert out.code == 0, out.out + out.err
    result = out.json()
    assert result["status"] == "SUCCESS"
    assert result["records"]["fetched"] > 0
    with env.engine().connect() as conn:
        assert conn.execute(select(func.count()).select_from(crypto_market_snapshot)).scalar() > 0

    out = ingest("trigger", "fear_greed", "--wait")
    assert out.code == 0, out.out + out.err
    assert ": SUCCESS" in out.out
    with env.engine().connect() as conn:
        days = conn.execute(select(fear_greed_index.c.index_date)).scalars().all()
    assert datetime.now(UTC).date() in days


def test_trigger_refuses_feeds_and_bad_partitions(env: Env) -> None:
    out = ingest("trigger", "binance_trades")
    assert out.code == 2 and "feed" in out.err
    out = ingest("trigger", "coingecko_markets", "--partition", "2026-01-01")
    assert out.code == 2 and "not partitioned" in out.err


def test_backfill_completes(env: Env) -> None:
    start = date.today() - timedelta(days=40)
    end = start + timedelta(days=6)
    out = ingest(
        "backfill", "fear_greed", "--from", str(start), "--to", str(end), "--wait", "--json"
    )
    assert out.code == 0, out.out + out.err
    result = out.json()
    assert result["ok"] and result["status"] in ("COMPLETED", "COMPLETED_SUCCESS")
    assert len(result["runs"]) == 1  # BackfillPolicy.single_run
    with env.engine().connect() as conn:
        days = set(
            conn.execute(
                select(fear_greed_index.c.index_date).where(
                    fear_greed_index.c.index_date.between(start, end)
                )
            ).scalars()
        )
    assert days == {start + timedelta(days=i) for i in range(7)}


def test_backfill_of_closed_days_only_is_refused(env: Env) -> None:
    # vn_stock_eod has trading-day partitions: Saturday 10 to Wednesday 14 February 2024 is the
    # weekend and Tết, so no partition exists to backfill and nothing may be launched.
    out = ingest("backfill", "vn_stock_eod", "--from", "2024-02-10", "--to", "2024-02-14")
    assert out.code == 2, out.out + out.err
    assert "no partition from 2024-02-10 to 2024-02-14" in out.err


def test_stats(env: Env) -> None:
    out = ingest("stats", "fear_greed", "--since", "1h", "--json")
    assert out.code == 0, out.err
    result = out.json()
    assert result["succeeded"] >= 2 and result["failed"] == 0
    assert result["records_per_run"]["fetched"]["sum"] >= 8
    assert result["duration_s"]["count"] == result["succeeded"]
    text = ingest("stats", "fear_greed")
    assert "succeeded" in text.out and "records fetched" in text.out


# ---- alerts ---------------------------------------------------------------------------------


def _sensor_ticked_after(env: Env, name: str, ts: float) -> bool:
    ticks = env.sensor(name)["ticks"]
    return bool(ticks) and ticks[0]["timestamp"] > ts and ticks[0]["status"] != "STARTED"


def test_failure_alert_once_then_recovery(env: Env) -> None:
    env.replay.faults.add("/fng/", 404, times=None)
    try:
        out = ingest("trigger", "fear_greed", "--wait")
        assert out.code == 1
        assert "FAILURE" in out.out and "404" in out.out

        # Dagster retries the run (dagster.yaml: max_retries 2); wait for the last attempt.
        def last_failure():
            runs = env.runs(pipelineName="fear_greed_job")
            if any(r["status"] not in ("SUCCESS", "FAILURE", "CANCELED") for r in runs):
                return None
            tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
            return (
                runs[0]
                if runs[0]["status"] == "FAILURE" and tags.get("dagster/will_retry") == "false"
                else None
            )

        final = wait_until(last_failure, 120, interval_s=1, what="the last retry to fail")
        firing = wait_until(lambda: env.hooks.on("/fg"), 60, what="the failure alert")
        wait_until(
            lambda: _sensor_ticked_after(env, "ingest_run_alerts", final["updateTime"] + 3),
            60,
            what="a later tick of the alert sensor",
        )
    finally:
        env.replay.faults.clear()
    assert len(env.hooks.on("/fg")) == 1, env.hooks.on("/fg")
    alert = firing[0]
    assert alert["status"] == "firing" and alert["kind"] == "run_failure"
    assert alert["worker_id"] == "fear_greed"
    assert "404" in alert["detail"]
    assert alert["run_id"] == final["runId"]

    stats = ingest("stats", "fear_greed", "--since", "1h", "--json").json()
    assert stats["failed"] >= 1 and "404" in stats["recent_errors"][0]["error"]

    out = ingest("trigger", "fear_greed", "--wait")
    assert out.code == 0, out.out + out.err
    resolved = wait_until(
        lambda: [a for a in env.hooks.on("/fg") if a["status"] == "resolved"],
        60,
        what="the recovery message",
    )
    assert resolved[0]["key"] == alert["key"]
    assert len(env.hooks.on("/fg")) == 2
    logs = "".join(p.read_text(errors="replace") for p in env.stack.logs.values())
    assert SECRET not in logs


def test_stale_feed_alert_goes_to_the_global_slack_webhook(env: Env) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with env.engine().begin() as conn:
        conn.execute(delete(worker_state).where(worker_state.c.worker_id == "binance_trades"))
        conn.execute(
            worker_state.insert().values(
                worker_id="binance_trades",
                status="connected",
                heartbeat_at=long_ago,
                last_success_at=long_ago,
                details={"lag_s": 2.5, "connected_since": long_ago.isoformat()},
            )
        )
    status = ingest("status", "binance_trades", "--json").json()[0]
    assert status["feed"]["state"] == "connected" and status["feed"]["lag_s"] == 2.5
    assert ingest("start", "binance_trades").code == 0
    try:
        messages = wait_until(
            lambda: [m for m in env.hooks.on("/slack") if "binance_trades" in m.get("text", "")],
            90,
            what="the stale-feed alert",
        )
    finally:
        ingest("stop", "binance_trades")
    assert set(messages[0]) == {"text"}
    assert "stale" in messages[0]["text"]


def test_unreachable_webserver_is_a_clear_error(env: Env, monkeypatch) -> None:
    from ingestion_pipelines_tests.testbed.base import free_port

    monkeypatch.setenv("INGEST_DAGSTER_URL", f"http://admin:pw{SECRET}@127.0.0.1:{free_port()}")
    out = ingest("status")
    assert out.code == 1
    assert "not reachable" in out.err and "127.0.0.1" in out.err
    assert SECRET not in out.err
    out = ingest("health", "--json")
    assert out.code == 1
    assert json.loads(out.out)["checks"][0]["ok"] is False


RUN_TIMES = """
query ($id: ID!) {
  runOrError(runId: $id) { ... on Run { status startTime endTime } }
}"""


def test_two_runs_of_one_worker_never_overlap(env: Env) -> None:
    # The first run's fund list answers 4 s late, so a second run launched meanwhile would
    # overlap it, were it not held in the queue (a pool per worker, run granularity).
    env.replay.faults.add("/res/products/filter", delay=4, times=1)
    first = ingest("trigger", "fmarket_funds", "--json")
    second = ingest("trigger", "fmarket_funds", "--json")
    assert first.code == 0 and second.code == 0, first.err + second.err
    ids = [first.json()["run_id"], second.json()["run_id"]]

    def finished():
        runs = [env.gql(RUN_TIMES, id=i)["runOrError"] for i in ids]
        return runs if all(r["status"] in ("SUCCESS", "FAILURE") for r in runs) else None

    runs = wait_until(finished, 120, interval_s=1, what="both runs to finish")
    assert [r["status"] for r in runs] == ["SUCCESS", "SUCCESS"]
    (a, b) = sorted(runs, key=lambda r: r["startTime"])
    assert b["startTime"] >= a["endTime"], f"overlap: {a} / {b}"
    assert a["endTime"] - a["startTime"] >= 4  # the delayed run really was long


# ---- metrics (issue 22) ------------------------------------------------------------------------


def _scrape(port: int) -> dict[tuple[str, tuple], float] | None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _rows_metric(samples, worker: str, kind: str) -> float | None:
    return samples.get(("ingest_crawl_rows_total", (("kind", kind), ("worker", worker))))


def test_metrics_report_the_rows_the_runs_stored(env: Env) -> None:
    """After real crawls (a single run and, earlier in this module, a range backfill run),
    `ingest metrics` (a separate process reading Dagster's records) reports exactly the rows
    the runs stored in the tables."""
    import os
    import signal
    import subprocess
    import sys

    from ingestion_pipelines_tests.testbed.base import free_port

    out = ingest("trigger", "coingecko_markets", "--wait", "--json")
    assert out.code == 0, out.out + out.err
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ingestion_pipelines.cli", "metrics", "--port", str(port)],
        env={**os.environ, "INGEST_DAGSTER_URL": env.stack.url, "INGEST_METRICS_REFRESH_S": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: _scrape(port), 60, interval_s=0.3, what="ingest metrics to answer")

        def settled():  # a scheduled run may be in flight: compare once none is
            samples = _scrape(port)
            with env.engine().connect() as conn:
                stored = {
                    "coingecko_markets": conn.execute(
                        select(func.count()).select_from(crypto_market_snapshot)
                    ).scalar(),
                    "fear_greed": conn.execute(
                        select(func.count()).select_from(fear_greed_index)
                    ).scalar(),
                }
            reported = {w: _rows_metric(samples, w, "inserted") or 0 for w in stored}
            busy = any(
                samples.get(("ingest_crawl_runs_in_progress", (("worker", w),)), 0) for w in stored
            )
            return (samples, stored) if reported == stored and not busy else None

        samples, stored = wait_until(settled, 60, interval_s=1, what="metrics == stored rows")
        assert stored["coingecko_markets"] > 0
        succeeded = [
            r for r in env.runs(pipelineName="coingecko_markets_job") if r["status"] == "SUCCESS"
        ]
        key = ("ingest_crawl_runs_total", (("outcome", "success"), ("worker", "coingecko_markets")))
        assert samples[key] == len(succeeded) >= 1
        fetched = _rows_metric(samples, "coingecko_markets", "fetched")
        assert fetched >= stored["coingecko_markets"]
        ok = (
            "ingest_crawl_http_responses_total",
            (("status", "200"), ("worker", "coingecko_markets")),
        )
        assert samples[ok] >= len(succeeded)
        assert samples[("ingest_metrics_dagster_up", ())] == 1
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0, process.stdout.read().decode(errors="replace")
