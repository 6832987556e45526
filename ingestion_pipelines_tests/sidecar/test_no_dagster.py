"""The sidecar process is Dagster-free: its entry points (`python -m ingestion_pipelines.sidecar`
and `ingest sidecar`), its runner and the Dagster API client it talks through load in a fresh
interpreter without a single `dagster*` module."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, runpy, sys
sys.argv = ["ingestion_pipelines.sidecar", "--help"]
try:
    runpy.run_module("ingestion_pipelines.sidecar", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
import ingestion_pipelines.cli  # `ingest sidecar`, how the images start it
import ingestion_pipelines.sidecar.runner
import ingestion_pipelines.sidecar.reporter
import ingestion_pipelines.dagster_api.client
import ingestion_pipelines.dagster_api.feed_switches
loaded = sorted(m for m in sys.modules if m.split(".")[0].startswith("dagster"))
ours = sorted(m for m in sys.modules if m.startswith("ingestion_pipelines"))
print(json.dumps({"dagster": loaded, "ours": ours}))
"""


def probe() -> tuple[str, dict[str, list[str]]]:
    """Run the probe in a new interpreter (nothing of this test process leaks in)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout, json.loads(result.stdout.strip().splitlines()[-1])


def test_the_sidecar_process_imports_no_dagster_module() -> None:
    output, modules = probe()
    # The entry point really ran (its --help) and the runner loaded: an empty list means something.
    assert "usage:" in output
    assert "ingestion_pipelines.sidecar.runner" in modules["ours"]
    assert (
        "ingestion_pipelines.config.chain" in modules["ours"]
    )  # the config chain, without Dagster
    assert modules["dagster"] == []
