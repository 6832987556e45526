"""Prometheus configuration, rules and the Grafana dashboard: `promtool` checks the config and the
rules and runs the rules' unit tests; every metric an expression uses is one the code exports
(rendered here by the sidecar's and `ingest metrics`' own code) or a recording rule of rules.yml."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry

from ingestion_pipelines.control.metrics import CrawlCollector, RunLedger, run_figures
from ingestion_pipelines.http_client.results import HttpStats
from ingestion_pipelines.live.metrics import render as render_live_metrics
from ingestion_pipelines.sidecar.health import _SHARD_METRICS, render_metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "ingestion_pipelines.json"

PROMETHEUS_OWN = {"up"}


def _promtool(*args: str) -> subprocess.CompletedProcess:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run `sudo bash .ci/system-deps.sh` (Debian: prometheus)"
    return subprocess.run(
        [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "rules.yml"),
        ("test", "rules", "rules_test.yml"),
    ],
    ids=["config", "rules", "rule-tests"],
)
def test_promtool_accepts(args) -> None:
    result = _promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _exported_names(exposition: str) -> set[str]:
    return {
        re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
        for line in exposition.splitlines()
        if line and not line.startswith("#")
    }


def _sidecar_names() -> set[str]:
    shard = {field: 1 for *_, field in _SHARD_METRICS}
    sidecar = SimpleNamespace(
        shard_counters=lambda: {"binance_trades#0": shard},
        classes={"binance_trades": object},
        engines={"binance_trades#0": object()},
        live_replicas=["r1"],
        writers={},
        spool_bytes=lambda: 0,
    )
    return _exported_names(render_metrics(sidecar))


def _live_names() -> set[str]:
    hub = SimpleNamespace(
        refused={"token": 1}, clients=[], feeds={}, seq=0, dropped=0, dropped_messages=0,
        buffer=[], status="connected",
    )  # fmt: skip
    return _exported_names(render_live_metrics(hub))


def _crawl_names() -> set[str]:
    stats = HttpStats(requests_by_status={"200": 1}, retries=1)
    stats.observe_latency(0.2)
    metadata = {"records_fetched": 1, "requests_resumed": 1, **stats.as_metadata()}
    run = {
        "runId": "r",
        "jobName": "fear_greed_job",
        "status": "SUCCESS",
        "startTime": 1.0,
        "endTime": 2.0,
        "tags": [{"key": "ingest/worker", "value": "fear_greed"}],
        "assetMaterializations": [
            {
                "metadataEntries": [
                    {"label": k, "jsonString": json.dumps(v)}
                    if isinstance(v, dict)
                    else {"label": k, "floatValue": float(v)}
                    for k, v in metadata.items()
                ]
            }
        ],
    }
    ledger = RunLedger(client=None, min_interval_s=1e9)
    ledger.refreshed_at = float("inf")  # no reading of Dagster here: the ledger is filled below
    ledger.runs["r"] = run_figures(run)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CrawlCollector(ledger))
    return _exported_names(generate_latest(registry).decode())


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return _sidecar_names() | _crawl_names() | _live_names() | PROMETHEUS_OWN


def _rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


_PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric (and recording rule) names a PromQL expression reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\w+", "", text)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        if match.group(2) is None and match.group(1) not in _PROMQL_WORDS:
            names.add(match.group(1))
    return names


def test_the_expression_reader_reads_names() -> None:
    assert metric_names(
        'sum by (worker, le) (rate(a_bucket{x="y",le=~"1.*"}[5m])) / on (worker) b:c > 2 * 3600'
    ) == {"a_bucket", "b:c"}


def test_every_rule_reads_exported_metrics_or_recorded_series(exported) -> None:
    rules = _rules()
    recorded = {r["record"] for r in rules if "record" in r}
    assert {"ingest:sidecar_lag_seconds:max", "ingest:crawl_runs_failed:ratio1h"} <= recorded
    for rule in rules:
        unknown = metric_names(rule["expr"]) - exported - recorded
        assert not unknown, f"{rule.get('record') or rule.get('alert')}: {unknown}"


def test_every_component_has_alerts() -> None:
    components = {r["labels"].get("component") for r in _rules() if "alert" in r}
    assert {"crawls", "sidecar", "live"} <= components
    jobs = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    assert {j["job_name"] for j in jobs} >= {"ingest-sidecar", "ingest-crawls", "ingest-live"}


def _panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def test_dashboard_panels_use_metrics_that_exist(exported) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    recorded = {r["record"] for r in _rules() if "record" in r}
    exprs = [
        (panel["title"], target["expr"])
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets") or []
    ]
    assert len(exprs) >= 20
    used = set()
    for title, expr in exprs:
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        assert not names - exported - recorded, f"{title}: unknown {names - exported - recorded}"
        used |= names
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            metric = re.match(r"label_values\((\w+),", variable["definition"]).group(1)
            assert metric in exported
    # every component shows up on the dashboard
    assert any(n.startswith("ingest_crawl_") or n.startswith("ingest:crawl_") for n in used)
    assert any(n.startswith("ingest_sidecar_") or n.startswith("ingest:sidecar_") for n in used)
    assert any(n.startswith("ingest:live_") for n in used)
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))
