"""`ingest config set|unset`: validate locally, then change a value through the config_change job."""

from __future__ import annotations

import json
from typing import Any

from ingestion_pipelines.config.chain import ConfigChain
from ingestion_pipelines.config.workers import get_worker
from ingestion_pipelines.control.commands.common import (
    CONFIG_JOB,
    CONFIG_OP,
    GLOBAL,
    UsageError,
    launched_run,
    metadata_values,
    requested_by,
    run_error,
)
from ingestion_pipelines.dagster_api.client import ControlError, DagsterClient
from ingestion_pipelines.dagster_api.names import CONFIG_KEY_TAG, REQUESTED_BY_TAG, WORKER_TAG


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
    who = requested_by()
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
    launched = launched_run(data, f"launch {CONFIG_JOB}")
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
