"""The project is a dg project: `dg check yaml` validates every defs.yaml against the RestSource
schema, `dg list defs` lists every worker. (How fast the definitions load is a benchmark:
`benchmarks/definitions_load.py`.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ingestion_pipelines.config.workers import catalogue

ROOT = Path(__file__).resolve().parents[1]
DG = Path(sys.executable).parent / "dg"


def dg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DG), *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_dg_check_yaml_validates_the_declarations():
    out = dg("check", "yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "validated successfully" in out.stdout + out.stderr


def test_dg_list_defs_lists_every_worker():
    out = dg("list", "defs", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    listed = json.loads(out.stdout[out.stdout.index("{") :])
    assets = {asset["asset_key"] for asset in listed["assets"]}
    # the project's workers (tests register workers of their own, e.g. test_config's chain_test)
    project = {
        w
        for w, spec in catalogue().items()
        if spec.settings.__module__.startswith("ingestion_pipelines.")
    }
    assert project <= assets


def test_an_installed_package_without_pyproject_still_loads_the_defs_folder(monkeypatch):
    """In the image the package is installed (no pyproject.toml above it): the defs module is
    loaded directly."""
    from ingestion_pipelines import definitions

    monkeypatch.setattr(definitions, "discover_config_file", lambda _path: None)
    loaded = definitions.declared_defs()
    declared = {key.to_user_string() for asset in loaded.assets for key in asset.keys}
    assert "coingecko_markets" in declared
