"""Item 7: failures carry their cause (worker, redacted URL, cause) in the run failure after
retries, in `ingest trigger --wait` and in alerts; a database lost during a crawl is named."""

from __future__ import annotations

import re

import dagster as dg
from dagster._core.test_utils import instance_for_test
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster_graphql.test.utils import execute_dagster_graphql
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ingestion_pipelines.control.commands.common import run_error
from ingestion_pipelines.control.defs import _run_error, run_signals
from ingestion_pipelines.dagster_api.client import operation
from ingestion_pipelines.replay.http_server import ReplayServer
from ingestion_pipelines.sources.failures import StorageError, storage_failure
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema, get_engine
from ingestion_pipelines_tests.testbed.base import free_port

CAUSE = (
    "fear_greed: GET http://127.0.0.1:1/fng/ failed after 5 attempts: HTTP 503 Service Unavailable"
)


@dg.op(retry_policy=dg.RetryPolicy(max_retries=2, delay=0), tags={"ingest/worker": "fear_greed"})
def crawl_that_keeps_failing():
    raise dg.Failure(CAUSE, allow_retries=True)


@dg.job(tags={"ingest/worker": "fear_greed"})
def failing_job():
    crawl_that_keeps_failing()


class GraphqlOverInstance:
    """Dagster's own GraphQL schema, executed in this process over `instance`: what the CLI's
    `DagsterClient.run_events` reads from the webserver."""

    def __init__(self, instance):
        self.instance = instance

    def run_events(self, run_id: str) -> list[dict]:
        target = EmptyWorkspaceTarget()
        with WorkspaceProcessContext(self.instance, workspace_load_target=target) as process:
            result = execute_dagster_graphql(
                process.create_request_context(),
                operation("RunEvents"),
                {"runId": run_id, "limit": 1000},
            )
        return result.data["logsForRun"]["events"]


def test_the_cause_survives_retries_in_run_failure_wait_output_and_alerts():
    with instance_for_test() as instance:
        result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        shown = _run_error(instance, result.run_id)  # what the alert sensor reads
        assert "Exceeded max_retries of 2" in shown and CAUSE in shown
        wait_output = run_error(GraphqlOverInstance(instance), result.run_id)  # --wait
        assert wait_output is not None and CAUSE in wait_output
        [record] = instance.get_run_records(dg.RunsFilter(run_ids=[result.run_id]))
        [signal] = run_signals(instance, [record])
        assert signal.worker_id == "fear_greed" and CAUSE in signal.detail


def test_a_database_gone_names_worker_database_url_and_cause():
    dead = f"mysql+pymysql://ingest:Db-Pa55-77@127.0.0.1:{free_port()}/ingest"
    try:
        with get_engine(dead).connect():
            pass
    except SQLAlchemyError as exc:
        error = storage_failure("fear_greed", dead, "https://api.alternative.me", exc)
    finally:
        dispose_all()
    # transient: Dagster's RetryPolicy tries again, and the cause stays under its last failure
    assert isinstance(error, StorageError)
    text = str(error)
    # the user may be masked too when another test registered "ingest" as a password
    assert re.match(r"fear_greed: database mysql\+pymysql://(ingest|\*\*\*):\*\*\*@127", text)
    assert "https://api.alternative.me" in text and "2003" in text
    assert "Db-Pa55-77" not in text


def test_a_database_error_mid_crawl_fails_the_run_naming_worker_database_url_and_cause(
    mariadb_url, sqlite_url, monkeypatch
):
    from ingestion_pipelines.definitions import build_definitions

    ensure_schema(mariadb_url)
    with get_engine(mariadb_url).begin() as conn:  # lost under the running crawl
        conn.execute(text("DROP TABLE fear_greed_index"))
    monkeypatch.setenv("INGEST_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("FG_DATA_DB", mariadb_url)
    try:
        with ReplayServer() as replay, instance_for_test() as instance:
            for name, value in replay.env().items():
                monkeypatch.setenv(name, value)
            defs = build_definitions()
            asset = next(a for a in defs.assets if a.key.to_user_string() == "fear_greed")
            config = {"database_url": {"env": "FG_DATA_DB"}}
            result = dg.materialize(
                [asset],
                resources=defs.resources,
                instance=instance,
                partition_key="2026-01-05",
                run_config={"ops": {"fear_greed": {"config": config}}},
                raise_on_error=False,
            )
            assert not result.success
            shown = _run_error(instance, result.run_id)
            base_url = replay.env()["INGEST_FEAR_GREED__BASE_URL"]
    finally:
        dispose_all()
    # (the test bed's user and password are both "ingest": both are masked)
    assert "fear_greed: database mysql+pymysql://***:***@127.0.0.1:" in shown
    assert base_url in shown
    assert "1146" in shown  # MariaDB's own code: the table is gone
