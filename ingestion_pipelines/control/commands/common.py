"""What every control command shares: the usage error, run and metadata shaping.

Tag names live in `dagster_api.names`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ingestion_pipelines.config.workers import WorkerSpec, catalogue, get_worker
from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.core.redaction import redact, redact_url
from ingestion_pipelines.dagster_api.client import ControlError, DagsterClient, expect
from ingestion_pipelines.sources.failures import graphql_error_text

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


class UsageError(IngestError, ValueError):
    """A command that cannot apply (e.g. `trigger` on a feed): exit code 2."""


def iso_time(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def run_duration(run: dict[str, Any]) -> float | None:
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


def workers_of(worker: str | None) -> dict[str, WorkerSpec]:
    if worker:
        spec = get_worker(worker)
        return {spec.worker_id: spec}
    return catalogue()


def requested_by() -> str:
    from ingestion_pipelines.config.chain import _who

    return _who()


def worker_states(database_url: str) -> tuple[dict[str, dict[str, Any]], str | None]:
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


def launched_run(data: dict[str, Any], what: str) -> dict[str, Any]:
    answer = data.get("launchRun") or {}
    if answer.get("__typename") == "RunConfigValidationInvalid":
        messages = "; ".join(e["message"] for e in answer.get("errors") or [])
        raise ControlError(f"{what}: invalid run config: {messages}")
    return expect(answer, "LaunchRunSuccess", what)["run"]
