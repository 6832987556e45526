"""A real Dagster instance served by the operator webserver (no daemon: launched runs stay
queued, which is all these tests read: their tags and their stored run config)."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ingestion_pipelines.dagster_api.client import operation
from ingestion_pipelines_tests.control.helpers import ProjectStack, project_workspace

SELECTOR = {"repositoryLocationName": "ingestion_pipelines", "repositoryName": "__repository__"}
RUN = """
query ($id: ID!) {
  runOrError(runId: $id) { ... on Run { runId runConfigYaml tags { key value } } }
}"""
RUN_IDS = "{ runsOrError { ... on Runs { results { runId } } } }"


class OperatorStack(ProjectStack):
    """The project's stack with `python -m ingestion_pipelines.control.operator_webserver` in
    place of `dagster-webserver` (same options)."""

    def _spawn(self, name: str, args: list[str]) -> None:
        if name == "webserver":
            module = "ingestion_pipelines.control.operator_webserver"
            args = [sys.executable, "-m", module, *args[1:]]
        super()._spawn(name, args)


@dataclass
class Operator:
    stack: OperatorStack
    database_url: str

    def post(self, query: str, variables: Any = None, user: str | None = None):
        """(HTTP status, JSON answer) of a GraphQL POST, as the proxy would forward it."""
        headers = {"Content-Type": "application/json"}
        if user is not None:
            headers["X-Forwarded-User"] = user
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.stack.url}/graphql", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def launch(self, job: str, run_config: Any, tags: dict[str, str] | None = None, user=None):
        params = {
            "selector": {**SELECTOR, "jobName": job},
            "runConfigData": run_config,
            "executionMetadata": {
                "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]
            },
        }
        return self.post(operation("LaunchRun"), {"executionParams": params}, user)

    def run(self, run_id: str) -> dict[str, Any]:
        return self.stack.graphql(RUN, {"id": run_id})["runOrError"]

    def run_ids(self) -> set[str]:
        return {r["runId"] for r in self.stack.graphql(RUN_IDS)["runsOrError"]["results"]}

    def instance_bytes(self) -> bytes:
        """Every file of the Dagster instance (run storage, event logs, compute logs)."""
        home = Path(self.stack.home)
        return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


@pytest.fixture(scope="session")
def operator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    root = tmp_path_factory.mktemp("operator_stack")
    database_url = f"sqlite:///{root / 'ingest.db'}"
    env = {"INGEST_DATABASE_URL": database_url, "INGEST_LOCAL_DIR": str(root / "local")}
    stack = OperatorStack(
        project_workspace(root / "workspace"), root=root / "dagster", env=env, daemon=False
    )
    try:
        stack.start()
        yield Operator(stack, database_url)
    finally:
        stack.close()
