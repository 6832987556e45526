"""`ingest stats`: run history of a worker: outcomes, records, durations, recent errors."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from ingestion_pipelines.config.workers import get_worker
from ingestion_pipelines.control.commands.common import (
    CONFIG_JOB,
    UsageError,
    iso_time,
    metadata_values,
    records_of,
    run_duration,
    run_error,
)
from ingestion_pipelines.dagster_api.client import DagsterClient, expect
from ingestion_pipelines.dagster_api.names import WORKER_TAG

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
        if run_duration(run) is not None:
            durations.append(run_duration(run))
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
            "at": iso_time(r.get("endTime") or r.get("creationTime")),
            "error": run_error(client, r["runId"]),
        }
        for r in failed
    ]
    last_success = next((r for r in runs if r["status"] == "SUCCESS"), None)
    summary["last_success_at"] = iso_time(last_success.get("endTime")) if last_success else None
    return {"worker_id": worker, "since": after.isoformat(timespec="seconds"), **summary}
