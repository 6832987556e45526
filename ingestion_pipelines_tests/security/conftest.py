"""A real Dagster instance served by the operator webserver (no daemon: launched runs stay
queued, which is all these tests read: their tags and their stored run config), with the
shared proxy secret set as in the compose stack; and, on demand, the internal webserver (the
endpoint of sidecars and run containers) on the same instance."""

from __future__ import annotations

import json
import secrets
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
from ingestion_pipelines_tests.fakes.dagster_stack import wait_until
from ingestion_pipelines_tests.testbed.base import free_port

SELECTOR = {"repositoryLocationName": "ingestion_pipelines", "repositoryName": "__repository__"}
RUN = """
query ($id: ID!) {
  runOrError(runId: $id) { ... on Run { runId runConfigYaml tags { key value } } }
}"""
RUN_IDS = "{ runsOrError { ... on Runs { results { runId } } } }"
PROXY_SECRET = secrets.token_urlsafe(24)
MODULE = "ingestion_pipelines.control.operator_webserver"
# What the proxy adds to every request it forwards (docker/infra/nginx-operator.conf.template).
PROXIED = {"X-Ingest-Proxy-Secret": PROXY_SECRET, "X-Requested-With": "ingest"}


class OperatorStack(ProjectStack):
    """The project's stack with `python -m ingestion_pipelines.control.operator_webserver` in
    place of `dagster-webserver` (same options)."""

    request_headers = PROXIED

    def _spawn(self, name: str, args: list[str]) -> None:
        if name == "webserver":
            args = [sys.executable, "-m", MODULE, *args[1:]]
        super()._spawn(name, args)

    def start_internal(self) -> str:
        """The internal webserver (`--internal`) on this instance; its URL."""
        port = free_port()
        args = ["-h", "127.0.0.1", "-p", str(port), "-w", str(self.workspace)]
        self._spawn("internal", [sys.executable, "-m", MODULE, "--internal", *args])
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            self._check_alive()
            status, _ = request("GET", f"{url}/server_info")
            return status == 200

        wait_until(up, self.startup_timeout_s, interval_s=0.3, what="the internal webserver")
        return url


def request(method: str, url: str, body: bytes | None = None, headers=None):
    """(HTTP status, decoded JSON answer or the raw text) of one request."""
    req = urllib.request.Request(url, data=body, headers=dict(headers or {}), method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return None, None
    try:
        return status, json.loads(raw or b"{}")
    except ValueError:
        return status, raw.decode("utf-8", "replace")


@dataclass
class Operator:
    stack: OperatorStack
    database_url: str

    def post(self, query: str, variables: Any = None, user: str | None = None, **kw):
        """(HTTP status, JSON answer) of a GraphQL POST, as the proxy would forward it."""
        return self.post_body({"query": query, "variables": variables or {}}, user, **kw)

    def post_body(self, body: Any, user: str | None = None, headers=None, url=None):
        sent = {"Content-Type": "application/json", **PROXIED, **(headers or {})}
        sent = {k: v for k, v in sent.items() if v is not None}
        if user is not None:
            sent["X-Forwarded-User"] = user
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return request("POST", url or f"{self.stack.url}/graphql", data, sent)

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

    def tags(self, run_id: str) -> dict[str, str]:
        return {t["key"]: t["value"] for t in self.run(run_id)["tags"]}

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
    env = {
        "INGEST_DATABASE_URL": database_url,
        "INGEST_LOCAL_DIR": str(root / "local"),
        "INGEST_PROXY_SECRET": PROXY_SECRET,
    }
    stack = OperatorStack(
        project_workspace(root / "workspace"), root=root / "dagster", env=env, daemon=False
    )
    try:
        stack.start()
        yield Operator(stack, database_url)
    finally:
        stack.close()


@pytest.fixture(scope="session")
def internal_url(operator: Operator) -> str:
    """The internal webserver, on the operator's instance."""
    return operator.stack.start_internal()
