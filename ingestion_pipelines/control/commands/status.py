"""`ingest status`: every worker with its switch, runs, materialization, schedule and feed state."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ingestion_pipelines.config.chain import ConfigChain, ConfigError
from ingestion_pipelines.config.workers import WorkerSpec
from ingestion_pipelines.control.commands.common import (
    iso_time,
    metadata_values,
    records_of,
    run_duration,
    switch_of,
    worker_states,
    workers_of,
)
from ingestion_pipelines.core.redaction import redact
from ingestion_pipelines.core.settings import get_settings
from ingestion_pipelines.dagster_api.client import DagsterClient, expect
from ingestion_pipelines.vnmarket import calendar as market_calendar


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
    for key in ("connected_since", "last_message_at", "messages_per_s", "lag_s", *_BOOK_KEYS):
        if key in details:
            result[key] = details[key]
    if details.get("latest_resyncs"):  # order books: the last resynchronisation
        result["last_resync"] = details["latest_resyncs"][-1]
    return result


def provider_health(row: dict[str, Any] | None) -> dict[str, str] | None:
    """A multi-provider worker's health per provider (`worker_state.details["providers"]`, kept by
    sources/declared_providers.py): "ok", "blocked (HTTP 403) since ...", "N failures: ..."."""
    details = (row or {}).get("details") or {}
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            return None
    health = details.get("providers") if isinstance(details, dict) else None
    if not health:
        return None
    said = {}
    for name, h in health.items():
        if h.get("blocked_status"):
            said[name] = f"blocked (HTTP {h['blocked_status']}) since {h.get('unhealthy_since')}"
        elif h.get("consecutive_failures"):
            said[name] = f"{h['consecutive_failures']} failures: {h.get('last_error')}"
        else:
            said[name] = f"ok (newest day {h.get('newest_day')})"
    return said


# order-book feeds (binance_depth): books in sync and resynchronisations, by reason
_BOOK_KEYS = ("books", "books_synced", "resyncs", "resyncs_by_reason")


class _ConfigSwitches:
    """Each worker's `enabled` from the config chain; after the first database failure it stops
    asking, so that `status` still says quickly what Dagster knows."""

    def __init__(self, database_url: str):
        self._chain = ConfigChain(database_url)
        self.database_reachable = True

    def enabled(self, worker_id: str) -> bool | None:
        """The configured switch, or None when unknown (invalid value, database down)."""
        if not self.database_reachable:
            return None
        try:
            return self._chain.resolve(worker_id).settings.enabled
        except ConfigError:
            return None  # a bad value is for `ingest config list` to explain
        except Exception:  # noqa: BLE001 - database down: say what Dagster knows, quickly
            self.database_reachable = False
            return None


def _switch(instigator: dict[str, Any] | None, kind: str, name: str) -> dict[str, Any]:
    if instigator is None:
        return {"type": kind, "name": name, "status": "MISSING"}
    state = instigator.get("scheduleState") or instigator.get("sensorState") or {}
    return {"type": kind, "name": name, "status": state.get("status")}


def _schedule(instigator: dict[str, Any], running: bool) -> dict[str, Any]:
    ticks = (instigator.get("futureTicks") or {}).get("results") or []
    return {
        "cron": instigator.get("cronSchedule"),
        "timezone": instigator.get("executionTimezone"),
        "next_tick": iso_time(ticks[0]["timestamp"]) if ticks and running else None,
    }


def _last_run(run: dict[str, Any] | None) -> dict[str, Any] | None:
    if not run:
        return None
    return {
        "run_id": run["runId"],
        "status": run["status"],
        "started_at": iso_time(run.get("startTime") or run.get("creationTime")),
        "ended_at": iso_time(run.get("endTime")),
        "duration_s": run_duration(run),
    }


def _last_materialization(mat: dict[str, Any] | None) -> dict[str, Any] | None:
    if not mat:
        return None
    return {
        "run_id": mat.get("runId"),
        "at": iso_time(int(mat["timestamp"]) / 1000) if mat.get("timestamp") else None,
        "partition": mat.get("partition"),
        "records": records_of(metadata_values(mat.get("metadataEntries"))),
    }


class _Snapshot:
    """What Dagster and the database say about the selected workers, read once."""

    def __init__(self, client: DagsterClient, specs: dict[str, WorkerSpec], database_url: str):
        data = client.execute(
            "WorkerStatus",
            {
                "repositorySelector": client.repository_selector,
                "assetKeys": [{"path": [w]} for w in specs],
            },
        )
        schedules = expect(data.get("schedulesOrError"), "Schedules", "schedules")["results"]
        sensors = expect(data.get("sensorsOrError"), "Sensors", "sensors")["results"]
        self.instigators = {
            "schedule": {s["name"]: s for s in schedules},
            "sensor": {s["name"]: s for s in sensors},
        }
        self.latest = {
            tuple(i["assetKey"]["path"])[-1]: i for i in data.get("assetsLatestInfo") or []
        }
        # feeds' connection state; scheduled workers' provider health (declared_providers.py)
        self.states, self.state_error = worker_states(database_url) if specs else ({}, None)
        self.config = _ConfigSwitches(database_url)

    def feed(self, worker_id: str) -> dict[str, Any]:
        """The feed's connection state, or why it is unknown."""
        if self.state_error:
            return {"state": "unknown", "error": self.state_error}
        return feed_state(self.states.get(worker_id))

    def worker(self, worker_id: str, spec: WorkerSpec) -> dict[str, Any]:
        """One worker's status entry."""
        kind, name = switch_of(spec)
        instigator = self.instigators[kind].get(name)
        switch = _switch(instigator, kind, name)
        config_enabled = self.config.enabled(worker_id)
        running = switch["status"] == "RUNNING"
        item: dict[str, Any] = {
            "worker_id": worker_id,
            "kind": spec.kind,
            "switch": switch,
            "config_enabled": config_enabled,
            "enabled": running and config_enabled is not False,
        }
        if kind == "schedule" and instigator is not None:
            item["schedule"] = _schedule(instigator, running)
        info = self.latest.get(worker_id) or {}
        item["last_run"] = _last_run(info.get("latestRun"))
        item["runs_in_progress"] = len(info.get("inProgressRunIds") or [])
        item["runs_queued"] = len(info.get("unstartedRunIds") or [])
        item["last_materialization"] = _last_materialization(info.get("latestMaterialization"))
        market = market_calendar.status_for(worker_id, datetime.now(UTC))
        if market is not None:
            item["market"] = market
        if spec.kind == "feed":
            item["feed"] = self.feed(worker_id)
        elif (providers := provider_health(self.states.get(worker_id))) is not None:
            item["providers"] = providers
        return item


def status(
    client: DagsterClient, worker: str | None = None, *, database_url: str | None = None
) -> list[dict[str, Any]]:
    """Every worker (or one) with its switch, last run, last materialization, next tick and,
    for feeds, connection state and lag."""
    specs = workers_of(worker)
    snapshot = _Snapshot(client, specs, database_url or get_settings().database_url)
    return [snapshot.worker(worker_id, spec) for worker_id, spec in specs.items()]
