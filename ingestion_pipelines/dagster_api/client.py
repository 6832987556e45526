"""A small client for Dagster's GraphQL API, running the operations in `dagster_api/graphql/`.

    client = DagsterClient()                        # INGEST_DAGSTER_URL (http://127.0.0.1:3000)
    data = client.execute("Health")                 # the operation in graphql/Health.graphql
    client.repository_selector                      # {"repositoryLocationName": ..., ...}

Each `.graphql` file holds one operation, named like the file; dashboards use the same files.
Credentials in the URL (`http://user:password@host`) are sent as Basic auth and never shown.
Every failure raises `ControlError` with a message safe to print.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import Any

from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.core.redaction import redact, redact_url
from ingestion_pipelines.core.settings import get_settings
from ingestion_pipelines.dagster_api.http import DagsterHttp, DagsterHttpError
from ingestion_pipelines.dagster_api.names import LOCATION, REPOSITORY

TERMINAL_RUN_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
TERMINAL_BACKFILL_STATUSES = frozenset(
    {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
)


class ControlError(IngestError, RuntimeError):
    """Dagster could not be reached, or answered with an error (message safe to show)."""


@cache
def operation(name: str) -> str:
    """The text of `graphql/<name>.graphql` (package data)."""
    try:
        return resources.files(__package__).joinpath("graphql", f"{name}.graphql").read_text()
    except FileNotFoundError:
        raise ControlError(
            f"no GraphQL operation {name!r} in ingestion_pipelines/dagster_api/graphql"
        ) from None


def operation_names() -> list[str]:
    folder = resources.files(__package__).joinpath("graphql")
    return sorted(
        p.name[: -len(".graphql")] for p in folder.iterdir() if p.name.endswith(".graphql")
    )


def expect(answer: Mapping[str, Any] | None, typename: str, what: str) -> dict[str, Any]:
    """`answer` if its `__typename` is `typename`, else a `ControlError` naming the error."""
    answer = dict(answer or {})
    if answer.get("__typename") == typename:
        return answer
    detail = answer.get("message")
    if not detail and answer.get("errors"):
        detail = "; ".join(str(e.get("message")) for e in answer["errors"])
    raise ControlError(
        redact(f"{what}: Dagster answered {answer.get('__typename')}: {detail or 'no detail'}")
    )


class DagsterClient:
    """GraphQL over HTTP to one Dagster webserver."""

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout_s: float = 30.0,
        location: str = LOCATION,
        repository: str = REPOSITORY,
    ):
        self.url = url or get_settings().dagster_url
        try:
            self.http = DagsterHttp(self.url, timeout_s=timeout_s)
        except ValueError as exc:
            raise ControlError(f"INGEST_DAGSTER_URL: {exc}") from None
        self.location = location
        self.repository = repository

    @property
    def display_url(self) -> str:
        return redact_url(self.http.display_url)

    @property
    def repository_selector(self) -> dict[str, str]:
        return {"repositoryLocationName": self.location, "repositoryName": self.repository}

    def selector(self, **names: str) -> dict[str, str]:
        """The repository selector plus e.g. `jobName=...`, `scheduleName=...`."""
        return {**self.repository_selector, **names}

    def execute(self, name: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run operation `name` with `variables`; its `data`. Raises `ControlError`."""
        return self.query(operation(name), variables)

    def query(self, text: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        try:
            return self.http.graphql(text, variables)
        except DagsterHttpError as exc:
            message = str(exc)
            if exc.status is None and "unreachable" in message:
                message = (
                    f"the Dagster webserver at {self.display_url} is not reachable "
                    f"(set INGEST_DAGSTER_URL, or start it: `make demo`): {message}"
                )
            raise ControlError(redact(message)) from None

    # ---- waiting ------------------------------------------------------------------------------
    def run(self, run_id: str) -> dict[str, Any]:
        data = self.execute("Run", {"runId": run_id})
        return expect(data.get("runOrError"), "Run", f"run {run_id}")

    def wait_for_run(
        self,
        run_id: str,
        *,
        timeout_s: float | None = None,
        interval_s: float = 1.0,
        on_change: Callable[[dict[str, Any]], None] | None = None,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll run `run_id` until it ends (SUCCESS, FAILURE, CANCELED); the run.
        `on_change` is called when its status changes, `on_poll` at every poll."""
        return _poll(
            lambda: self.run(run_id),
            lambda run: run["status"] in TERMINAL_RUN_STATUSES,
            timeout_s,
            interval_s,
            on_change,
            f"run {run_id}",
            on_poll,
        )

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        data = self.execute("Backfill", {"backfillId": backfill_id})
        return expect(
            data.get("partitionBackfillOrError"), "PartitionBackfill", f"backfill {backfill_id}"
        )

    def wait_for_backfill(
        self,
        backfill_id: str,
        *,
        timeout_s: float | None = None,
        interval_s: float = 2.0,
        on_change: Callable[[dict[str, Any]], None] | None = None,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll a backfill until it is over and none of its runs is still going."""

        def done(backfill: dict[str, Any]) -> bool:
            runs_done = all(
                r["status"] in TERMINAL_RUN_STATUSES for r in backfill.get("runs") or []
            )
            return backfill["status"] in TERMINAL_BACKFILL_STATUSES and runs_done

        return _poll(
            lambda: self.backfill(backfill_id),
            done,
            timeout_s,
            interval_s,
            on_change,
            f"backfill {backfill_id}",
            on_poll,
        )

    def run_events(self, run_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Every event of a run (paged)."""
        events: list[dict[str, Any]] = []
        cursor = None
        while True:
            data = self.execute(
                "RunEvents", {"runId": run_id, "afterCursor": cursor, "limit": limit}
            )
            page = expect(data.get("logsForRun"), "EventConnection", f"events of run {run_id}")
            events.extend(page.get("events") or [])
            if not page.get("hasMore") or page.get("cursor") in (None, cursor):
                return events
            cursor = page["cursor"]


def _poll(fetch, finished, timeout_s, interval_s, on_change, what, on_poll=None):
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    last_status = None
    while True:
        value = fetch()
        status = value.get("status")
        if on_change is not None and status != last_status:
            on_change(value)
        last_status = status
        if on_poll is not None:
            on_poll(value)
        if finished(value):
            return value
        if deadline is not None and time.monotonic() >= deadline:
            raise ControlError(f"timed out after {timeout_s:g} s waiting for {what} ({status})")
        time.sleep(interval_s)
