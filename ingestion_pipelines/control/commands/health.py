"""`ingest health`: webserver, daemons, code locations, feed heartbeats, database and Redis."""

from __future__ import annotations

import time
from typing import Any

from ingestion_pipelines.control.commands.common import (
    worker_states,
)
from ingestion_pipelines.core.redaction import redact, redact_url
from ingestion_pipelines.core.settings import get_settings
from ingestion_pipelines.dagster_api.client import ControlError, DagsterClient, expect


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

    states, error = worker_states(database_url)
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
