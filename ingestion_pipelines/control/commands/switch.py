"""`ingest start|stop`: switch a worker's schedule, feed sensor or the derived sensor."""

from __future__ import annotations

from typing import Any

from ingestion_pipelines.config.workers import get_worker
from ingestion_pipelines.control.commands.common import (
    switch_of,
)
from ingestion_pipelines.dagster_api.client import ControlError, DagsterClient, expect


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
