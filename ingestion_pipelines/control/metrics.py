"""`ingest metrics`: the crawls' Prometheus metrics, computed from what Dagster recorded.

Where the numbers come from, and why there: every crawl run's outcome is Dagster's run record,
and its counters are the metadata of the materialization the run committed (rows fetched /
inserted / updated / unchanged / rejected, HTTP responses by status, retries, checkpoint
resumes, and, where the run recorded them, rate-limit waits and request latencies). Dagster
writes both to its run and event-log storage as they happen, and its run monitoring marks a run
whose process died as failed, so nothing here depends on a run process staying alive, nor on
this server: a restarted `ingest metrics` reads the same records and reports the same totals
(counters computed from durable records, not counted in memory). Only what a run committed is
counted: a run that dies before its materialization reports its outcome, not its rows.

The server refreshes incrementally (runs updated since the last refresh, with an overlap) at most
every `INGEST_METRICS_REFRESH_S` seconds (default 10), through `dagster_api/` (GraphQL).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from prometheus_client import start_http_server
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from ingestion_pipelines.control.commands.common import CONFIG_JOB, metadata_values, records_of
from ingestion_pipelines.core.redaction import redact
from ingestion_pipelines.core.settings import get_settings
from ingestion_pipelines.dagster_api.client import ControlError, DagsterClient, expect
from ingestion_pipelines.dagster_api.names import WORKER_TAG

TERMINAL = {"SUCCESS": "success", "FAILURE": "failure", "CANCELED": "canceled"}
ROW_KINDS = ("fetched", "inserted", "updated", "unchanged", "rejected")
PAGE = 500
OVERLAP_S = 120.0  # runs updated this long before the last refresh are read again


@dataclass
class RunFigures:
    """What one run contributes to the metrics."""

    worker: str
    status: str
    rows: dict[str, int] = field(default_factory=dict)
    http_status: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    resumes: int = 0
    rate_limit_wait_s: float = 0.0
    latency_le: dict[str, int] = field(default_factory=dict)
    latency_sum_s: float = 0.0
    duration_s: float | None = None
    ended_at: float | None = None


def _committed_metadata(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The metadata of the run's materializations, counted once: a range run copies its
    counts into every partition's materialization (each naming the range), so only the first
    of those counts."""
    seen_ranges: set[str] = set()
    out = []
    for mat in run.get("assetMaterializations") or []:
        values = metadata_values(mat.get("metadataEntries"))
        covered = values.get("partition_range")
        if covered is not None:
            if covered in seen_ranges:
                continue
            seen_ranges.add(covered)
        out.append(values)
    return out


def run_figures(run: dict[str, Any]) -> RunFigures | None:
    """The figures of one crawl run (None: not a crawl run)."""
    tags = {t["key"]: t["value"] for t in run.get("tags") or []}
    worker = tags.get(WORKER_TAG)
    if not worker or run.get("jobName") == CONFIG_JOB:
        return None
    figures = RunFigures(worker=worker, status=run["status"])
    rows: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    latency: Counter[str] = Counter()
    for values in _committed_metadata(run):
        rows.update(records_of(values))
        by_status = values.get("http_requests_by_status")
        if isinstance(by_status, dict):
            statuses.update({str(k): int(v) for k, v in by_status.items()})
        figures.retries += int(values.get("http_retries") or 0)
        figures.resumes += int(values.get("requests_resumed") or 0)
        figures.rate_limit_wait_s += float(values.get("http_rate_limit_wait_s") or 0)
        buckets = values.get("http_latency_le")
        if isinstance(buckets, dict):
            latency.update({str(k): int(v) for k, v in buckets.items()})
            figures.latency_sum_s += float(values.get("http_latency_sum_s") or 0)
    figures.rows, figures.http_status, figures.latency_le = (
        dict(rows),
        dict(statuses),
        dict(latency),
    )
    if run.get("startTime") and run.get("endTime"):
        figures.duration_s = max(0.0, run["endTime"] - run["startTime"])
    figures.ended_at = run.get("endTime")
    return figures


class RunLedger:
    """Every crawl run's figures by run id, refreshed incrementally from Dagster."""

    def __init__(self, client: DagsterClient, min_interval_s: float = 10.0):
        self.client = client
        self.min_interval_s = min_interval_s
        self.runs: dict[str, RunFigures] = {}
        self.watermark: float | None = None
        self.refreshed_at = 0.0
        self.up = False
        self.errors = 0
        self._lock = threading.Lock()

    def refresh(self, force: bool = False) -> None:
        """Read the runs updated since the last refresh (all of them the first time)."""
        with self._lock:
            if not force and time.monotonic() - self.refreshed_at < self.min_interval_s:
                return
            try:
                self._read(self.watermark)
            except ControlError as exc:
                self.up = False
                self.errors += 1
                logger.warning("metrics: Dagster not readable: {}", redact(str(exc)))
            else:
                self.up = True
            self.refreshed_at = time.monotonic()

    def _read(self, watermark: float | None) -> None:
        run_filter = {} if watermark is None else {"updatedAfter": watermark - OVERLAP_S}
        cursor, newest = None, watermark or 0.0
        while True:
            data = self.client.execute(
                "CrawlMetrics", {"filter": run_filter, "cursor": cursor, "limit": PAGE}
            )
            page = expect(data.get("runsOrError"), "Runs", "runs for the metrics")["results"]
            for run in page:
                newest = max(newest, float(run.get("updateTime") or 0))
                figures = run_figures(run)
                if figures is not None:
                    self.runs[run["runId"]] = figures
            if len(page) < PAGE:
                break
            cursor = page[-1]["runId"]
        self.watermark = newest


def _by_worker(runs: Iterable[RunFigures]) -> dict[str, list[RunFigures]]:
    grouped: dict[str, list[RunFigures]] = defaultdict(list)
    for figures in runs:
        grouped[figures.worker].append(figures)
    return dict(sorted(grouped.items()))


def _histogram(name: str, doc: str, per_worker) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["worker"])
    for worker, (buckets, total) in per_worker.items():
        if buckets:
            family.add_metric([worker], buckets, total)
    return family


def _latency(runs: list[RunFigures]) -> tuple[list[tuple[str, float]], float]:
    merged: Counter[str] = Counter()
    total = 0.0
    for figures in runs:
        merged.update(figures.latency_le)
        total += figures.latency_sum_s
    ordered = sorted(merged.items(), key=lambda kv: float(kv[0].replace("+Inf", "inf")))
    return [(le, float(n)) for le, n in ordered], total


DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))


def _durations(runs: list[RunFigures]) -> tuple[list[tuple[str, float]], float]:
    values = [f.duration_s for f in runs if f.duration_s is not None]
    if not values:
        return [], 0.0
    buckets = [
        ("+Inf" if b == float("inf") else str(float(b)), float(sum(v <= b for v in values)))
        for b in DURATION_BUCKETS
    ]
    return buckets, sum(values)


class CrawlCollector:
    """The prometheus_client collector: the ledger's figures as metric families per worker."""

    def __init__(self, ledger: RunLedger):
        self.ledger = ledger

    def collect(self) -> Iterator[Any]:
        self.ledger.refresh()
        grouped = _by_worker(self.ledger.runs.values())
        yield from self._counters(grouped)
        yield from self._gauges(grouped)
        yield _histogram(
            "ingest_crawl_request_latency_seconds",
            "Latency of the crawls' HTTP attempts (as recorded by the runs)",
            {w: _latency(r) for w, r in grouped.items()},
        )
        yield _histogram(
            "ingest_crawl_run_duration_seconds",
            "Duration of finished crawl runs",
            {w: _durations(r) for w, r in grouped.items()},
        )

    def _counters(self, grouped: dict[str, list[RunFigures]]) -> Iterator[Any]:
        runs = CounterMetricFamily(
            "ingest_crawl_runs", "Finished crawl runs by outcome", labels=["worker", "outcome"]
        )
        rows = CounterMetricFamily(
            "ingest_crawl_rows", "Rows of committed crawl runs by kind", labels=["worker", "kind"]
        )
        http = CounterMetricFamily(
            "ingest_crawl_http_responses",
            "HTTP responses of the crawls by status (`error`: no response)",
            labels=["worker", "status"],
        )
        retries = CounterMetricFamily(
            "ingest_crawl_http_retries", "HTTP retries", labels=["worker"]
        )
        waits = CounterMetricFamily(
            "ingest_crawl_rate_limit_wait_seconds",
            "Time spent waiting on rate limits",
            labels=["worker"],
        )
        resumes = CounterMetricFamily(
            "ingest_crawl_checkpoint_resumes",
            "Requests skipped because an earlier run had committed them (checkpoints)",
            labels=["worker"],
        )
        for worker, figures in grouped.items():
            outcomes = Counter(TERMINAL[f.status] for f in figures if f.status in TERMINAL)
            for outcome in TERMINAL.values():
                runs.add_metric([worker, outcome], outcomes.get(outcome, 0))
            totals: Counter[str] = Counter()
            statuses: Counter[str] = Counter()
            for f in figures:
                totals.update(f.rows)
                statuses.update(f.http_status)
            for kind in ROW_KINDS:
                rows.add_metric([worker, kind], totals.get(kind, 0))
            for status, count in sorted(statuses.items()):
                http.add_metric([worker, status], count)
            retries.add_metric([worker], sum(f.retries for f in figures))
            waits.add_metric([worker], sum(f.rate_limit_wait_s for f in figures))
            resumes.add_metric([worker], sum(f.resumes for f in figures))
        yield from (runs, rows, http, retries, waits, resumes)

    def _gauges(self, grouped: dict[str, list[RunFigures]]) -> Iterator[Any]:
        running = GaugeMetricFamily(
            "ingest_crawl_runs_in_progress", "Crawl runs queued or running", labels=["worker"]
        )
        last_success = GaugeMetricFamily(
            "ingest_crawl_last_success_timestamp_seconds",
            "End time of the worker's latest successful run",
            labels=["worker"],
        )
        for worker, figures in grouped.items():
            running.add_metric([worker], sum(f.status not in TERMINAL for f in figures))
            ends = [f.ended_at for f in figures if f.status == "SUCCESS" and f.ended_at]
            if ends:
                last_success.add_metric([worker], max(ends))
        up = GaugeMetricFamily(
            "ingest_metrics_dagster_up", "1 when the last read of Dagster's run records worked"
        )
        up.add_metric([], 1.0 if self.ledger.up else 0.0)
        errors = CounterMetricFamily(
            "ingest_metrics_refresh_errors", "Failed reads of Dagster's run records"
        )
        errors.add_metric([], self.ledger.errors)
        yield from (running, last_success, up, errors)


def registry_for(client: DagsterClient, min_interval_s: float | None = None) -> CollectorRegistry:
    """A registry serving the crawl metrics read through `client`."""
    if min_interval_s is None:
        min_interval_s = float(os.environ.get("INGEST_METRICS_REFRESH_S") or 10)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CrawlCollector(RunLedger(client, min_interval_s)))
    return registry


def serve(host: str | None, port: int | None, dagster_url: str | None = None) -> int:
    """Serve /metrics until SIGTERM/SIGINT (exit 0)."""
    settings = get_settings()
    host = host or settings.metrics_host
    port = settings.metrics_port if port is None else port
    client = DagsterClient(dagster_url)
    server, thread = start_http_server(port, addr=host, registry=registry_for(client))
    logger.info(
        "ingest metrics on http://{}:{}/metrics (runs from {})",
        host,
        server.server_port,
        client.display_url,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    thread.join(5)
    return 0
