"""Definitions are built when Dagster asks for them: importing `definitions.py` builds nothing,
touches no database and changes no process-wide setting (warning filters, loggers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg

from ingestion_pipelines import definitions

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys, warnings
from loguru import logger
import curl_cffi, dagster, sqlalchemy  # third-party import-time effects are not ours to judge
filters = list(warnings.filters)
import ingestion_pipelines.definitions as d
print(json.dumps({
    "areas": sorted(m for m in sys.modules if m.endswith(".defs") or m.endswith(".factory")),
    "filters_unchanged": list(warnings.filters) == filters,
    "sqlalchemy_logs_enabled": all(
        name != "sqlalchemy" for name, enabled in logger._core.activation_list if not enabled
    ),
}))
"""


def test_importing_the_definitions_module_does_no_work(tmp_path) -> None:
    database = tmp_path / "never-created.db"
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={
            "PYTHONPATH": str(ROOT),
            "PATH": "/usr/bin:/bin",
            "INGEST_DATABASE_URL": f"sqlite:///{database}",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["areas"] == []  # no area's definitions (nor the asset factory) were imported
    assert seen["filters_unchanged"]
    assert seen["sqlalchemy_logs_enabled"]
    assert not database.exists()  # no database probe at import


def test_dagster_builds_them_on_request() -> None:
    built = definitions.defs()  # what Dagster's loader calls
    assert isinstance(built, dg.Definitions)
    assert built.get_job_def("fear_greed_job").name == "fear_greed_job"
