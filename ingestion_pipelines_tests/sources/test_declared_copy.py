"""The "add a source" recipe, followed literally in a copy of the code: a YAML source's folder
copied under a new name, its worker id and table renamed inside, and nothing else touched, is a
working source: in the catalogue (`ingest workers`), served by the replay, given its table and its
migration (`ingest db revision`), and passing the standard tests. A source with a hook too: its
family's replay and expected values serve every worker declared with the hook
(sources/declared_family.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingestion_pipelines.sources.paginators import at_path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Case:
    """A source whose folder is copied, and what its copy's replay answers first."""

    original: str
    table: str
    page: str  # a request to the copy's replay (after its base URL)
    first: str  # a JSON path in that answer, and what it holds
    holds: object

    @property
    def copy(self) -> str:
        return f"{self.original}_copy"

    @property
    def copy_table(self) -> str:
        return f"{self.table}_copy"


CASES = [
    Case(
        "coingecko_markets",
        "crypto_market_snapshot",
        "/coins/markets?vs_currency=usd&per_page=5&page=1",
        "0.id",
        "bitcoin",
    ),
    # the paginated source of the 40-line measure (test_declared_size.py)
    Case(
        "vn_financial_ratios", "financial_ratio", "/v4/ratios?size=5&page=1", "data.0.code", "ILB"
    ),
    # a hook's declaration (mempool/chain.py:ChainPoll), its table declared in its defs.yaml
    Case("btc_chain", "btc_chain_stat", "/v1/fees/recommended", "fastestFee", 3),
]


@pytest.fixture(scope="module", params=CASES, ids=lambda case: case.original)
def copied(request, tmp_path_factory) -> tuple[Path, Case]:
    """A copy of the code with `defs/<original>/` copied as `defs/<original>_copy/`."""
    case = request.param
    root = tmp_path_factory.mktemp("copy")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("ingestion_pipelines", "ingestion_pipelines_tests"):
        shutil.copytree(ROOT / package, root / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", root)
    defs = root / "ingestion_pipelines" / "defs"
    shutil.copytree(defs / case.original, defs / case.copy)
    declaration = defs / case.copy / "defs.yaml"
    text = declaration.read_text()
    declaration.write_text(
        text.replace(f"worker_id: {case.original}", f"worker_id: {case.copy}").replace(
            f"name: {case.table}", f"name: {case.copy_table}"
        )
    )
    return root, case


def run(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        args, cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_the_copy_is_in_the_catalogue_the_tables_and_the_replay(copied):
    copied, case = copied
    script = textwrap.dedent(
        f"""
        import contextlib, io, json, urllib.request
        import ingestion_pipelines
        from ingestion_pipelines.cli import main
        from ingestion_pipelines.replay.http_server import ReplayServer
        from ingestion_pipelines.storage import tables
        assert ingestion_pipelines.__file__.startswith({str(copied)!r}), ingestion_pipelines.__file__
        with contextlib.redirect_stdout(io.StringIO()) as listed:
            main(["workers", "--json"])
        print(json.dumps(json.loads(listed.getvalue())))
        print(json.dumps(sorted(tables.DATA_TABLES)))
        with ReplayServer() as server:
            url = server.env()["INGEST_{case.copy.upper()}__BASE_URL"]
            page = url + {case.page!r}
            print(json.dumps(json.load(urllib.request.urlopen(page))))
        """
    )
    out = run(copied, sys.executable, "-c", script)
    assert out.returncode == 0, out.stderr[-3000:]
    workers, data_tables, page = out.stdout.strip().splitlines()[-3:]
    assert {"worker_id": case.copy, "kind": "scheduled"} in json.loads(workers)
    assert {case.table, case.copy_table} <= set(json.loads(data_tables))
    assert at_path(json.loads(page), case.first) == case.holds


REVISION = ("db", "revision", "-m", "the copied source")  # `ingest db revision -m ...`


@pytest.mark.slow
def test_the_copy_passes_the_standard_tests(copied):
    copied, case = copied
    revision = run(copied, sys.executable, "-m", "ingestion_pipelines.cli", *REVISION)
    assert revision.returncode == 0, revision.stderr[-3000:]
    generated = Path(revision.stdout.split()[1].rstrip(":"))
    assert generated.parent == copied / "ingestion_pipelines/storage/migrations/versions"
    code = generated.read_text()
    assert re.search(rf"op\.create_table\(\s*[\"']{case.copy_table}[\"']", code), code
    assert case.table not in code.replace(case.copy_table, "")  # only the copy's table is new
    tests = copied / "ingestion_pipelines_tests" / "sources" / "test_standard.py"
    out = run(
        copied,
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(tests),
        "-k",
        case.copy,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    assert "3 passed" in out.stdout
