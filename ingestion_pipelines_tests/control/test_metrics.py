"""The crawl metrics' arithmetic on runs shaped as Dagster's GraphQL answers them (the end-to-end
check against a real stack and real crawls is `test_stack.test_metrics_report_the_rows_the_runs_stored`)."""

from __future__ import annotations

import json

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ingestion_pipelines.control.metrics import CrawlCollector, RunLedger, run_figures
from ingestion_pipelines.http_client.results import HttpStats


def _entry(label, value):
    if isinstance(value, dict):
        return {"label": label, "jsonString": json.dumps(value)}
    if isinstance(value, float):
        return {"label": label, "floatValue": value}
    if isinstance(value, str):
        return {"label": label, "text": value}
    return {"label": label, "intValue": value}


def _run(run_id, worker, status, *materializations, start=100.0, end=130.0):
    return {
        "runId": run_id,
        "jobName": f"{worker}_job",
        "status": status,
        "startTime": start,
        "endTime": end if status in ("SUCCESS", "FAILURE", "CANCELED") else None,
        "updateTime": end,
        "tags": [{"key": "ingest/worker", "value": worker}],
        "assetMaterializations": [
            {"partition": p, "metadataEntries": [_entry(k, v) for k, v in m.items()]}
            for p, m in materializations
        ],
    }


def _samples(ledger: RunLedger) -> dict:
    from prometheus_client.core import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(CrawlCollector(ledger))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


class _NoRefresh(RunLedger):
    def refresh(self, force=False):
        self.up = True


def test_range_runs_count_once_and_outcomes_add_up():
    stats = HttpStats()
    for seconds in (0.03, 0.2, 7.0):
        stats.observe_latency(seconds)
    single = {
        "records_fetched": 10,
        "records_inserted": 7,
        "records_updated": 2,
        "records_unchanged": 1,
        "records_rejected": 0,
        "requests_resumed": 3,
        "http_retries": 2,
        "http_requests_by_status": {"200": 4, "503": 2},
        **{k: v for k, v in stats.as_metadata().items() if k.startswith("http_latency")},
        "http_rate_limit_wait_s": 1.5,
    }
    ranged = {
        "partition_range": "2026-01-01..2026-01-03",
        "records_fetched": 3,
        "records_inserted": 3,
        "records_rejected": 1,
    }
    ledger = _NoRefresh(client=None)
    runs = [
        _run("a", "fear_greed", "SUCCESS", (None, single)),
        # one range run: Dagster holds one materialization per partition, each with the range's
        # counts; they count once
        _run("b", "fear_greed", "SUCCESS", *[(f"2026-01-0{d}", ranged) for d in (1, 2, 3)]),
        _run("c", "fear_greed", "FAILURE"),
        _run("d", "fear_greed", "STARTED"),
        {**_run("e", "x", "SUCCESS"), "jobName": "config_change"},
    ]
    for run in runs:
        figures = run_figures(run)
        if figures is not None:
            ledger.runs[run["runId"]] = figures
    samples = _samples(ledger)
    w = (("worker", "fear_greed"),)

    def rows(kind):
        return samples[("ingest_crawl_rows_total", (("kind", kind), *w))]

    assert (rows("fetched"), rows("inserted"), rows("rejected")) == (13, 10, 1)
    assert (rows("updated"), rows("unchanged")) == (2, 1)
    outcome = lambda o: samples[("ingest_crawl_runs_total", (("outcome", o), *w))]  # noqa: E731
    assert (outcome("success"), outcome("failure"), outcome("canceled")) == (2, 1, 0)
    assert samples[("ingest_crawl_runs_in_progress", w)] == 1
    assert samples[("ingest_crawl_http_responses_total", (("status", "503"), *w))] == 2
    assert samples[("ingest_crawl_http_retries_total", w)] == 2
    assert samples[("ingest_crawl_checkpoint_resumes_total", w)] == 3
    assert samples[("ingest_crawl_rate_limit_wait_seconds_total", w)] == 1.5
    bucket = lambda le: samples[  # noqa: E731
        ("ingest_crawl_request_latency_seconds_bucket", (("le", le), *w))
    ]
    assert (bucket("0.05"), bucket("0.25"), bucket("5.0"), bucket("+Inf")) == (1, 2, 2, 3)
    assert samples[("ingest_crawl_request_latency_seconds_count", w)] == 3
    assert samples[("ingest_crawl_run_duration_seconds_count", w)] == 3
    assert samples[("ingest_crawl_last_success_timestamp_seconds", w)] == 130.0
    assert not any(dict(labels).get("worker") == "x" for _, labels in samples)
