"""`ingest trigger|backfill`: launch a run or a partition backfill, optionally waiting for it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

from ingestion_pipelines.config.workers import get_worker
from ingestion_pipelines.control.commands.common import (
    UsageError,
    iso_time,
    launched_run,
    metadata_values,
    records_of,
    requested_by,
    run_duration,
    run_error,
)
from ingestion_pipelines.dagster_api.client import ControlError, DagsterClient, expect
from ingestion_pipelines.dagster_api.names import (
    LAUNCHED_BY_TAG,
    PARTITION_TAG,
    REQUESTED_BY_TAG,
    WORKER_TAG,
)


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
        "started_at": iso_time(run.get("startTime")),
        "ended_at": iso_time(run.get("endTime")),
        "duration_s": run_duration(run),
        "records": dict(records),
        "materialized_partitions": partitions,
    }
    if run["status"] in ("FAILURE", "CANCELED"):
        summary["error"] = run_error(client, run["runId"])
    return summary


def trigger(
    client: DagsterClient,
    worker: str,
    *,
    partition: str | None = None,
    wait: bool = False,
    timeout_s: float | None = None,
    on_change: Callable[[dict[str, Any]], None] | None = None,
    on_poll: Callable[[dict[str, Any]], None] | None = None,
    extra_tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Launch a run of a worker now (the newest partition unless `partition`); with `wait`,
    `on_change`/`on_poll` see the run at each status change / each poll (progress displays).
    `extra_tags` go on the run besides ours (e.g. Dagster's `dagster/priority` in the queue)."""
    spec = get_worker(worker)
    if spec.kind == "feed":
        raise UsageError(
            f"{worker} is a feed: it runs continuously in the sidecar; use `ingest start/stop`"
        )
    node = _asset_node(client, worker)
    tags = {**(extra_tags or {}), WORKER_TAG: worker, REQUESTED_BY_TAG: requested_by()}
    tags[LAUNCHED_BY_TAG] = "cli"
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
    launched = launched_run(data, f"launch {job}")
    result = {"worker_id": worker, "run_id": launched["runId"], "job": job, "partition": partition}
    if wait:
        run = client.wait_for_run(
            launched["runId"], timeout_s=timeout_s, on_change=on_change, on_poll=on_poll
        )
        result.update(run_summary(client, run))
    else:
        result["status"] = launched["status"]
    return result


def _check_date(text: str, flag: str) -> str:
    try:
        date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected a partition date YYYY-MM-DD") from None
    return text


def fit_range(keys: list[str], start: str, end: str) -> tuple[str, str] | None:
    """The first and last of `keys` (a worker's partition keys, in order) within `start`..`end`,
    or None when none is: trading-day partitions have no key on a weekend or a holiday."""
    inside = [key for key in keys if start <= key <= end]
    return (inside[0], inside[-1]) if inside else None


def _fitted_range(client: DagsterClient, worker: str, start: str, end: str) -> tuple[str, str]:
    data = client.execute("PartitionKeys", {"assetKey": {"path": [worker]}})
    node = expect(data.get("assetNodeOrError"), "AssetNode", f"asset {worker}")
    if not node.get("isPartitioned"):
        raise UsageError(f"{worker} is not partitioned: use `ingest trigger {worker}`")
    fitted = fit_range(node.get("partitionKeys") or [], start, end)
    if fitted is None:
        raise UsageError(
            f"{worker} has no partition from {start} to {end} "
            "(its partitions may skip closed days: weekends and holidays)"
        )
    return fitted


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
    first, last = _fitted_range(client, worker, start, end)
    tags = {WORKER_TAG: worker, REQUESTED_BY_TAG: requested_by(), LAUNCHED_BY_TAG: "cli"}
    data = client.execute(
        "LaunchBackfill",
        {
            "backfillParams": {
                "partitionsByAssets": [
                    {
                        "assetKey": {"path": [worker]},
                        "partitions": {"range": {"start": first, "end": last}},
                    }
                ],
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
                "title": f"{worker} {first}..{last}",
            }
        },
    )
    answer = expect(data.get("launchPartitionBackfill"), "LaunchBackfillSuccess", "backfill")
    result: dict[str, Any] = {
        "worker_id": worker,
        "backfill_id": answer["backfillId"],
        "from": first,
        "to": last,
    }
    if (first, last) != (start, end):
        result["requested"] = {"from": start, "to": end}
    if wait:
        done = client.wait_for_backfill(
            answer["backfillId"], timeout_s=timeout_s, on_change=on_change, on_poll=on_poll
        )
        runs = done.get("runs") or []
        result.update(
            status=done["status"],
            partitions=done.get("numPartitions"),
            runs=[
                {"run_id": r["runId"], "status": r["status"], "duration_s": run_duration(r)}
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
