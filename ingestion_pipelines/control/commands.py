"""The control-plane commands (`ingest status|start|stop|trigger|backfill|stats|health|config
set|unset`): each returns plain data (dicts, lists; JSON-ready); `control/cli.py` prints it.

Errors: `UsageError` (a request that cannot make sense: exit 2), `ConfigError`/`KeyError`
(invalid value, unknown worker or key: exit 2), `ControlError` (Dagster unreachable or
refusing: exit 1).
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ingestion_pipelines import market_calendar
from ingestion_pipelines.config import ConfigChain, ConfigError
from ingestion_pipelines.dagster_api.client import ControlError, DagsterClient, expect
from ingestion_pipelines.failures import graphql_error_text
from ingestion_pipelines.redaction import redact, redact_url
from ingestion_pipelines.settings import get_settings
from ingestion_pipelines.workers import WorkerSpec, catalogue, get_worker

WORKER_TAG = "ingest/worker"
CONFIG_KEY_TAG = "ingest/config_key"
REQUESTED_BY_TAG = "ingest/requested_by"
PARTITION_TAG = "dagster/partition"
CONFIG_JOB = "config_change"
CONFIG_OP = "apply_config_change"
GLOBAL = "global"
RECORD_KEYS = (
    "records_fetched",
    "records_inserted",
    "records_updated",
    "records_unchanged",
    "records_rejected",
)
DERIVED_SENSOR = "derived_automation"


class UsageError(ValueError):
    """A command that cannot apply (e.g. `trigger` on a feed): exit code 2."""


# ---- helpers ----------------------------------------------------------------------------------


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def _duration(run: dict[str, Any]) -> float | None:
    start, end = run.get("startTime"), run.get("endTime")
    return round(end - start, 3) if start is not None and end is not None else None


def metadata_values(entries: list[dict[str, Any]] | None) -> dict[str, Any]:
    """GraphQL metadata entries as {label: value}."""
    values: dict[str, Any] = {}
    for entry in entries or []:
        for field in ("intValue", "floatValue", "text", "boolValue", "timestamp"):
            if field in entry and entry[field] is not None:
                values[entry["label"]] = entry[field]
                break
        else:
            if entry.get("jsonString") is not None:
                try:
                    values[entry["label"]] = json.loads(entry["jsonString"])
                except ValueError:
                    values[entry["label"]] = entry["jsonString"]
    return values


def records_of(metadata: dict[str, Any]) -> dict[str, int]:
    return {
        key.removeprefix("records_"): int(metadata[key])
        for key in RECORD_KEYS
        if isinstance(metadata.get(key), int | float)
    }


def switch_of(spec: WorkerSpec) -> tuple[str, str]:
    """('schedule' | 'sensor', name) of the Dagster instigator that switches a worker on/off."""
    if spec.kind == "scheduled":
        return "schedule", f"{spec.worker_id}_schedule"
    if spec.kind == "feed":
        return "sensor", f"{spec.worker_id}_feed"
    return "sensor", DERIVED_SENSOR


def _workers(worker: str | None) -> dict[str, WorkerSpec]:
    if worker:
        spec = get_worker(worker)
        return {spec.worker_id: spec}
    return catalogue()


def _requested_by() -> str:
    from ingestion_pipelines.config import _who

    return _who()


# ---- status -----------------------------------------------------------------------------------


def _worker_states(database_url: str) -> tuple[dict[str, dict[str, Any]], str | None]:
    from sqlalchemy import select

    from ingestion_pipelines.storage.engines import ensure_schema
    from ingestion_pipelines.storage.tables import worker_state

    try:
        engine = ensure_schema(database_url)
        with engine.connect() as conn:
            rows = conn.execute(select(worker_state)).mappings().all()
    except Exception as exc:  # noqa: BLE001 - status still shows what Dagster knows
        return {}, redact(f"worker_state unreadable on {redact_url(database_url)}: {exc}")[:300]
    return {row["worker_id"]: dict(row) for row in rows}, None


def _aware(value):
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def feed_state(row: dict[str, Any] | None, now: datetime | None = None) -> dict[str, Any]:
    """Connection state and lag of a feed from its `worker_state` row."""
    if row is None:
        return {"state": "never reported"}
    now = now or datetime.now(UTC)
    details = row.get("details") or {}
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            details = {}
    heartbeat = _aware(row.get("heartbeat_at"))
    result = {
        "state": row.get("status") or "unknown",
        "heartbeat_at": heartbeat.isoformat(timespec="seconds") if heartbeat else None,
        "heartbeat_age_s": round((now - heartbeat).total_seconds(), 1) if heartbeat else None,
        "last_success_at": (
            _aware(row["last_success_at"]).isoformat(timespec="seconds")
            if row.get("last_success_at")
            else None
        ),
        "last_error": redact(str(row["last_error"]))[:300] if row.get("last_error") else None,
    }
    for key in ("connected_since", "last_message_at", "messages_per_s", "lag_s"):
        if key in details:
            result[key] = details[key]
    return result


def status(
    client: DagsterClient, worker: str | None = None, *, database_url: str | None = None
) -> list[dict[str, Any]]:
    """Every worker (or one) with its switch, last run, last materialization, next tick and,
    for feeds, connection state and lag."""
    specs = _workers(worker)
    data = client.execute(
        "WorkerStatus",
        {
            "repositorySelector": client.repository_selector,
            "assetKeys": [{"path": [w]} for w in specs],
        },
    )
    schedules = {
        s["name"]: s
        for s in expect(data.get("schedulesOrError"), "Schedules", "schedules")["results"]
    }
    sensors = {
        s["name"]: s for s in expect(data.get("sensorsOrError"), "Sensors", "sensors")["results"]
    }
    latest = {tuple(i["assetKey"]["path"])[-1]: i for i in data.get("assetsLatestInfo") or []}
    database_url = database_url or get_settings().database_url
    states, state_error = (
        _worker_states(database_url)
        if any(s.kind == "feed" for s in specs.values())
        else ({}, None)
    )
    chain: ConfigChain | None = ConfigChain(database_url)
    result = []
    for worker_id, spec in specs.items():
        kind, name = switch_of(spec)
        item: dict[str, Any] = {"worker_id": worker_id, "kind": spec.kind}
        instigator = (schedules if kind == "schedule" else sensors).get(name)
        if instigator is None:
            switch = {"type": kind, "name": name, "status": "MISSING"}
        else:
            state = instigator.get("scheduleState") or instigator.get("sensorState") or {}
            switch = {"type": kind, "name": name, "status": state.get("status")}
        config_enabled = None
        if chain is not None:
            try:
                config_enabled = chain.resolve(worker_id).settings.enabled
            except ConfigError:
                pass  # a bad value is for `ingest config list` to explain
            except Exception:  # noqa: BLE001 - database down: say what Dagster knows, quickly
                chain = None
        item["switch"] = switch
        item["config_enabled"] = config_enabled
        item["enabled"] = switch["status"] == "RUNNING" and config_enabled is not False
        if kind == "schedule" and instigator is not None:
            ticks = (instigator.get("futureTicks") or {}).get("results") or []
            item["schedule"] = {
                "cron": instigator.get("cronSchedule"),
                "timezone": instigator.get("executionTimezone"),
                "next_tick": (
                    _iso(ticks[0]["timestamp"]) if ticks and switch["status"] == "RUNNING" else None
                ),
            }
        info = latest.get(worker_id) or {}
        run = info.get("latestRun")
        item["last_run"] = (
            {
                "run_id": run["runId"],
                "status": run["status"],
                "started_at": _iso(run.get("startTime") or run.get("creationTime")),
                "ended_at": _iso(run.get("endTime")),
                "duration_s": _duration(run),
            }
            if run
            else None
        )
        item["runs_in_progress"] = len(info.get("inProgressRunIds") or [])
        item["runs_queued"] = len(info.get("unstartedRunIds") or [])
        mat = info.get("latestMaterialization")
        if mat:
            metadata = metadata_values(mat.get("metadataEntries"))
            item["last_materialization"] = {
                "run_id": mat.get("runId"),
                "at": _iso(int(mat["timestamp"]) / 1000) if mat.get("timestamp") else None,
                "partition": mat.get("partition"),
                "records": records_of(metadata),
            }
        else:
            item["last_materialization"] = None
        market = market_calendar.status_for(worker_id, datetime.now(UTC))
        if market is not None:
            item["market"] = market
        if spec.kind == "feed":
            item["feed"] = (
                {"state": "unknown", "error": state_error}
                if state_error
                else feed_state(states.get(worker_id))
            )
        result.append(item)
    return result


# ---- start / stop -----------------------------------------------------------------------------


def set_switch(client: DagsterClient, worker: str, on: bool) -> dict[str, Any]:
    """Start or stop a worker: its schedule (scheduled), its switch sensor (feed; the sidecar
    follows), or the derived automation sensor (derived)."""
    spec = get_worker(worker)
    kind, name = switch_of(spec)
    if kind == "schedule":
        selector = client.selector(scheduleName=name)
        if on:
            data = client.execute("StartSchedule", {"scheduleSelector": selector})
            answer = expect(data.get("startSchedule"), "ScheduleStateResult", f"start {name}")
        else:
            schedule_id = _instigator_id(client, "schedule", name)
            data = client.execute("StopSchedule", {"id": schedule_id})
            answer = expect(data.get("stopRunningSchedule"), "ScheduleStateResult", f"stop {name}")
        new_status = answer["scheduleState"]["status"]
    elif spec.kind == "feed":
        from ingestion_pipelines.dagster_api.feed_switches import FeedControl, FeedControlError

        try:
            now_on = FeedControl(client.url, location=client.location).set_enabled(worker, on)
        except FeedControlError as exc:
            raise ControlError(str(exc)) from None
        new_status = "RUNNING" if now_on else "STOPPED"
    else:
        selector = client.selector(sensorName=name)
        if on:
            data = client.execute("StartSensor", {"sensorSelector": selector})
            answer = expect(data.get("startSensor"), "Sensor", f"start {name}")
            new_status = answer["sensorState"]["status"]
        else:
            sensor_id = _instigator_id(client, "sensor", name)
            data = client.execute("StopSensor", {"id": sensor_id})
            answer = expect(
                data.get("stopSensor"), "StopSensorMutationResult", f"stop sensor {name}"
            )
            new_status = answer["instigationState"]["status"]
    return {
        "worker_id": worker,
        "kind": spec.kind,
        "switch": {"type": kind, "name": name, "status": new_status},
        "ok": (new_status == "RUNNING") == on,
    }


def _instigator_id(client: DagsterClient, kind: str, name: str) -> str:
    data = client.execute(
        "WorkerStatus", {"repositorySelector": client.repository_selector, "assetKeys": []}
    )
    key = "schedulesOrError" if kind == "schedule" else "sensorsOrError"
    results = expect(data.get(key), "Schedules" if kind == "schedule" else "Sensors", key)
    for item in results["results"]:
        if item["name"] == name:
            return item["id"]
    raise ControlError(f"no {kind} {name!r} in Dagster at {client.display_url}")


# ---- trigger ----------------------------------------------------------------------------------


def _asset_node(client: DagsterClient, worker: str) -> dict[str, Any]:
    data = client.execute("LastPartition", {"assetKey": {"path": [worker]}})
    return expect(data.get("assetNodeOrError"), "AssetNode", f"asset {worker}")


def run_summary(client: DagsterClient, run: dict[str, Any]) -> dict[str, Any]:
    """Outcome of a finished run: status, times, records, and its error when it failed."""
    tags = {t["key"]: t["value"] for t in run.get("tags") or []}
    records: Counter[str] = Counter()
    partitions = []
    for mat in run.get("assetMaterializations") or []:
        records.update(records_of(metadata_values(mat.get("metadataEntries"))))
        if mat.get("partition"):
            partitions.append(mat["partition"])
    summary = {
        "run_id": run["runId"],
        "job": run.get("jobName"),
        "status": run["status"],
        "partition": tags.get(PARTITION_TAG),
        "started_at": _iso(run.get("startTime")),
        "ended_at": _iso(run.get("endTime")),
        "duration_s": _duration(run),
        "records": dict(records),
        "materialized_partitions": partitions,
    }
    if run["status"] in ("FAILURE", "CANCELED"):
        summary["error"] = run_error(client, run["runId"])
    return summary


def run_error(client: DagsterClient, run_id: str) -> str | None:
    """The first step failure's error of a run, else its run failure message."""
    try:
        events = client.run_events(run_id)
    except ControlError as exc:
        return f"(error not readable: {exc})"
    step = next((e for e in events if e["__typename"] == "ExecutionStepFailureEvent"), None)
    failure = step or next((e for e in events if e["__typename"] == "RunFailureEvent"), None)
    if failure is None:
        return None
    message = graphql_error_text(failure.get("error")) or failure.get("message") or ""
    return redact(message.strip())[:1000]


def trigger(
    client: DagsterClient,
    worker: str,
    *,
    partition: str | None = None,
    wait: bool = False,
    timeout_s: float | None = None,
    on_change: Callable[[dict[str, Any]], None] | None = None,
    on_poll: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Launch a run of a worker now (the newest partition unless `partition`); with `wait`,
    `on_change`/`on_poll` see the run at each status change / each poll (progress displays)."""
    spec = get_worker(worker)
    if spec.kind == "feed":
        raise UsageError(
            f"{worker} is a feed: it runs continuously in the sidecar; use `ingest start/stop`"
        )
    node = _asset_node(client, worker)
    tags = {WORKER_TAG: worker, REQUESTED_BY_TAG: _requested_by(), "ingest/launched_by": "cli"}
    if node.get("isPartitioned"):
        if partition is None:
            keys = (node.get("partitionKeyConnection") or {}).get("results") or []
            if not keys:
                raise ControlError(f"{worker}: Dagster lists no partition for its asset")
            partition = keys[0]
        tags[PARTITION_TAG] = partition
    elif partition is not None:
        raise UsageError(f"{worker} is not partitioned: --partition does not apply")
    job = f"{worker}_job"
    selector: dict[str, Any]
    if job in (node.get("jobNames") or []):
        selector = client.selector(jobName=job)
    else:
        job = next(iter(node.get("jobNames") or []), "__ASSET_JOB")
        selector = {**client.selector(jobName=job), "assetSelection": [{"path": [worker]}]}
    data = client.execute(
        "LaunchRun",
        {
            "executionParams": {
                "selector": selector,
                "runConfigData": {},
                "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
            }
        },
    )
    launched = _launched(data, f"launch {job}")
    result = {"worker_id": worker, "run_id": launched["runId"], "job": job, "partition": partition}
    if wait:
        run = client.wait_for_run(
            launched["runId"], timeout_s=timeout_s, on_change=on_change, on_poll=on_poll
        )
        result.update(run_summary(client, run))
    else:
        result["status"] = launched["status"]
    return result


def _launched(data: dict[str, Any], what: str) -> dict[str, Any]:
    answer = data.get("launchRun") or {}
    if answer.get("__typename") == "RunConfigValidationInvalid":
        messages = "; ".join(e["message"] for e in answer.get("errors") or [])
        raise ControlError(f"{what}: invalid run config: {messages}")
    return expect(answer, "LaunchRunSuccess", what)["run"]


# ---- backfill ---------------------------------------------------------------------------------


def _check_date(text: str, flag: str) -> str:
    try:
        date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected a partition date YYYY-MM-DD") from None
    return text


def backfill(
    client: DagsterClient,
    worker: str,
    start: str,
    end: str,
    *,
    wait: bool = False,
    timeout_s: float | None = None,
    on_change: Callable[[dict[str, Any]], None] | None = None,
    on_poll: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """A backfill of partitions `start`..`end` (inclusive) of a partitioned worker; with
    `wait`, `on_change`/`on_poll` see it at each status change / each poll."""
    spec = get_worker(worker)
    _check_date(start, "--from")
    _check_date(end, "--to")
    if end < start:
        raise UsageError(f"--to {end} is before --from {start}")
    if spec.kind == "feed":
        raise UsageError(f"{worker} is a feed: its gaps are filled by the sidecar")
    node = _asset_node(client, worker)
    if not node.get("isPartitioned"):
        raise UsageError(f"{worker} is not partitioned: use `ingest trigger {worker}`")
    tags = {WORKER_TAG: worker, REQUESTED_BY_TAG: _requested_by(), "ingest/launched_by": "cli"}
    data = client.execute(
        "LaunchBackfill",
        {
            "backfillParams": {
                "partitionsByAssets": [
                    {
                        "assetKey": {"path": [worker]},
                        "partitions": {"range": {"start": start, "end": end}},
                    }
                ],
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
                "title": f"{worker} {start}..{end}",
            }
        },
    )
    answer = expect(data.get("launchPartitionBackfill"), "LaunchBackfillSuccess", "backfill")
    result: dict[str, Any] = {
        "worker_id": worker,
        "backfill_id": answer["backfillId"],
        "from": start,
        "to": end,
    }
    if wait:
        done = client.wait_for_backfill(
            answer["backfillId"], timeout_s=timeout_s, on_change=on_change, on_poll=on_poll
        )
        runs = done.get("runs") or []
        result.update(
            status=done["status"],
            partitions=done.get("numPartitions"),
            runs=[
                {"run_id": r["runId"], "status": r["status"], "duration_s": _duration(r)}
                for r in runs
            ],
            error=(done.get("error") or {}).get("message"),
        )
        result["ok"] = done["status"] in ("COMPLETED", "COMPLETED_SUCCESS")
        failed = [r["runId"] for r in runs if r["status"] == "FAILURE"]
        if failed and not result["ok"]:
            result["run_error"] = run_error(client, failed[0])
    else:
        result["status"] = "REQUESTED"
    return result


# ---- stats ------------------------------------------------------------------------------------

_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str | None, now: datetime | None = None) -> datetime:
    """`7d`, `12h`, `30m`, a date or an ISO time (UTC unless it says) -> an aware datetime."""
    now = now or datetime.now(UTC)
    if not text:
        return now - timedelta(days=7)
    match = _SINCE.match(text)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r}: expected a duration (30m, 12h, 7d, 2w) or a date/time"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "count": len(values),
        "sum": round(sum(values), 3),
        "mean": round(statistics.fmean(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts by status, records per successful run (sum, mean, ...), durations."""
    by_status = Counter(r["status"] for r in runs)
    per_key: dict[str, list[float]] = {}
    durations = []
    for run in runs:
        if run["status"] != "SUCCESS":
            continue
        totals: Counter[str] = Counter()
        for mat in run.get("assetMaterializations") or []:
            totals.update(records_of(metadata_values(mat.get("metadataEntries"))))
        for key, value in totals.items():
            per_key.setdefault(key, []).append(value)
        if _duration(run) is not None:
            durations.append(_duration(run))
    return {
        "runs": len(runs),
        "succeeded": by_status.get("SUCCESS", 0),
        "failed": by_status.get("FAILURE", 0),
        "canceled": by_status.get("CANCELED", 0),
        "in_progress": sum(
            n for s, n in by_status.items() if s not in ("SUCCESS", "FAILURE", "CANCELED")
        ),
        "records_per_run": {k: _spread(v) for k, v in sorted(per_key.items())},
        "duration_s": _spread(durations),
    }


def stats(
    client: DagsterClient, worker: str, *, since: str | None = None, errors: int = 5
) -> dict[str, Any]:
    """Run history of a worker since `since` (default 7 days): outcomes, records, durations and
    the most recent errors."""
    get_worker(worker)
    after = parse_since(since)
    runs: list[dict[str, Any]] = []
    cursor = None
    while True:
        data = client.execute(
            "WorkerRuns",
            {
                "filter": {
                    "tags": [{"key": WORKER_TAG, "value": worker}],
                    "createdAfter": after.timestamp(),
                },
                "cursor": cursor,
                "limit": 500,
            },
        )
        page = expect(data.get("runsOrError"), "Runs", f"runs of {worker}")["results"]
        runs.extend(r for r in page if r["jobName"] != CONFIG_JOB)
        if len(page) < 500:
            break
        cursor = page[-1]["runId"]
    summary = summarize_runs(runs)
    failed = [r for r in runs if r["status"] == "FAILURE"][:errors]
    summary["recent_errors"] = [
        {
            "run_id": r["runId"],
            "at": _iso(r.get("endTime") or r.get("creationTime")),
            "error": run_error(client, r["runId"]),
        }
        for r in failed
    ]
    last_success = next((r for r in runs if r["status"] == "SUCCESS"), None)
    summary["last_success_at"] = _iso(last_success.get("endTime")) if last_success else None
    return {"worker_id": worker, "since": after.isoformat(timespec="seconds"), **summary}


# ---- health -----------------------------------------------------------------------------------


def _check(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "ok": bool(ok), "detail": redact(detail)}


def health(
    client: DagsterClient, *, database_url: str | None = None, redis_url: str | None = None
) -> dict[str, Any]:
    """Webserver, daemons, code locations, feeds' heartbeats, database and Redis."""
    settings = get_settings()
    database_url = database_url or settings.database_url
    redis_url = redis_url if redis_url is not None else settings.redis_url
    checks: list[dict[str, Any]] = []
    sensors: dict[str, str] | None = None
    try:
        data = client.execute("Health")
    except ControlError as exc:
        checks.append(_check("webserver", False, str(exc)))
    else:
        checks.append(
            _check("webserver", True, f"{client.display_url} (dagster {data.get('version')})")
        )
        now = time.time()
        for daemon in data["instance"]["daemonHealth"]["allDaemonStatuses"]:
            if not daemon["required"]:
                continue
            beat = daemon.get("lastHeartbeatTime")
            detail = f"last heartbeat {round(now - beat)} s ago" if beat else "no heartbeat"
            errors = daemon.get("lastHeartbeatErrors") or []
            if errors:
                detail += f"; error: {errors[0]['message'][:200]}"
            checks.append(
                _check(f"daemon {daemon['daemonType']}", daemon.get("healthy") is True, detail)
            )
        workspace = data.get("workspaceOrError") or {}
        for entry in workspace.get("locationEntries") or []:
            loaded = entry.get("locationOrLoadError") or {}
            if entry["loadStatus"] != "LOADED":
                checks.append(_check(f"code location {entry['name']}", False, "loading"))
            elif loaded.get("__typename") == "PythonError":
                message = loaded.get("message", "").strip().splitlines()
                checks.append(
                    _check(
                        f"code location {entry['name']}",
                        False,
                        f"failed to load: {message[-1] if message else '?'}",
                    )
                )
            else:
                checks.append(_check(f"code location {entry['name']}", True, "loaded"))
        try:
            data = client.execute(
                "WorkerStatus", {"repositorySelector": client.repository_selector, "assetKeys": []}
            )
            found = expect(data.get("sensorsOrError"), "Sensors", "sensors")["results"]
            sensors = {s["name"]: s["sensorState"]["status"] for s in found}
        except ControlError as exc:
            checks.append(_check("sensors", False, str(exc)))
    checks.extend(_feed_checks(database_url, sensors))
    checks.append(_database_check(database_url))
    checks.append(_redis_check(redis_url))
    return {"healthy": all(c["ok"] for c in checks), "checks": checks}


def _feed_checks(database_url: str, sensors: dict[str, str] | None) -> list[dict[str, Any]]:
    from ingestion_pipelines.feeds.base import feed_classes

    feeds = feed_classes()
    if not feeds:
        return []
    if sensors is None:
        return [_check(f"feed {w}", False, "switch state unknown (Dagster)") for w in feeds]
    from ingestion_pipelines.feeds.defs import heartbeat_timeout_s, judge_heartbeat

    states, error = _worker_states(database_url)
    checks = []
    for worker_id, feed in feeds.items():
        switch = sensors.get(f"{worker_id}_feed")
        if switch is None:
            checks.append(
                _check(f"feed {worker_id}", True, "no switch sensor in Dagster: not deployed")
            )
        elif switch != "RUNNING":
            checks.append(_check(f"feed {worker_id}", True, "switched off"))
        elif error:
            checks.append(_check(f"feed {worker_id}", False, error))
        else:
            verdict = judge_heartbeat(
                worker_id, states.get(worker_id), timeout_s=heartbeat_timeout_s(feed)
            )
            checks.append(_check(f"feed {worker_id}", verdict.passed, verdict.description))
    return checks


def _database_check(database_url: str) -> dict[str, Any]:
    from sqlalchemy import text

    from ingestion_pipelines.storage.engines import get_engine

    shown = redact_url(database_url)
    try:
        with get_engine(database_url).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        return _check("database", False, f"{shown}: {type(exc).__name__}: {exc}"[:400])
    return _check("database", True, shown)


def _redis_check(redis_url: str | None) -> dict[str, Any]:
    if not redis_url:
        return _check("redis", True, "not configured (single-process fallbacks)")
    from ingestion_pipelines.resources.redis import get_redis

    shown = redact_url(redis_url)
    try:
        get_redis(redis_url, feature="health").ping()
    except Exception as exc:  # noqa: BLE001
        return _check("redis", False, f"{shown}: {type(exc).__name__}: {exc}"[:400])
    return _check("redis", True, shown)


# ---- config set / unset ------------------------------------------------------------------------


def parse_cli_value(text: str) -> Any:
    """A value typed on the command line: JSON when it parses (5, true, ["a"]), else text;
    `env:NAME` is a secret reference, `{"env": "NAME"}`."""
    if text.startswith("env:"):
        return {"env": text[len("env:") :]}
    try:
        return json.loads(text)
    except ValueError:
        return text


def config_change(
    client: DagsterClient,
    worker: str,
    key: str,
    value: str | None = None,
    *,
    unset: bool = False,
    timeout_s: float | None = 300,
    reload_location: bool = True,
) -> dict[str, Any]:
    """Validate locally, then launch the `config_change` job and wait for it; old -> new."""
    from ingestion_pipelines.control.defs import check_key

    worker_id = None if worker in (GLOBAL, "-") else worker
    if worker_id:
        get_worker(worker_id)  # KeyError: unknown worker
    payload: dict[str, Any] = {"worker_id": worker_id, "key": key, "unset": unset}
    if unset:
        check_key(worker_id, key)
    else:
        if value is None:
            raise UsageError("config set needs a VALUE")
        parsed = parse_cli_value(value)
        ConfigChain().validate(worker_id, key, parsed)  # reads no database
        payload["value"] = json.dumps(parsed)
    who = _requested_by()
    payload["requested_by"] = who
    tags = {WORKER_TAG: worker_id or GLOBAL, CONFIG_KEY_TAG: key, REQUESTED_BY_TAG: who}
    data = client.execute(
        "LaunchRun",
        {
            "executionParams": {
                "selector": client.selector(jobName=CONFIG_JOB),
                "runConfigData": {"ops": {CONFIG_OP: {"config": payload}}},
                "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
            }
        },
    )
    launched = _launched(data, f"launch {CONFIG_JOB}")
    run = client.wait_for_run(launched["runId"], timeout_s=timeout_s)
    result: dict[str, Any] = {
        "run_id": run["runId"],
        "status": run["status"],
        "worker_id": worker_id or GLOBAL,
        "key": key,
        "action": "unset" if unset else "set",
        "requested_by": who,
    }
    if run["status"] != "SUCCESS":
        result["error"] = run_error(client, run["runId"])
        return result
    for event in client.run_events(run["runId"]):
        if event["__typename"] == "ExecutionStepOutputEvent":
            metadata = metadata_values(event.get("metadataEntries"))
            result["old"] = metadata.get("old_value")
            result["new"] = metadata.get("new_value")
    if key == "cron" and reload_location:
        result["reloaded"] = _reload(client)
    return result


def _reload(client: DagsterClient) -> str:
    """Reload the code location so the webserver shows a new cron (the daemon reloads its own
    copy within a minute)."""
    try:
        data = client.execute("ReloadLocation", {"name": client.location})
    except ControlError as exc:
        return f"not reloaded: {exc}"
    answer = data.get("reloadRepositoryLocation") or {}
    if answer.get("__typename") == "WorkspaceLocationEntry":
        return "code location reloaded"
    return f"not reloaded: {answer.get('__typename')}: {answer.get('message', '')}"


__all__ = [
    "ConfigError",
    "ControlError",
    "UsageError",
    "backfill",
    "config_change",
    "health",
    "parse_since",
    "set_switch",
    "stats",
    "status",
    "summarize_runs",
    "trigger",
]
