"""The control plane without a webserver: GraphQL operations against Dagster's schema, result
shaping and text, the config_change job on SQLite and MariaDB, refusals before any launch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from graphql import OperationDefinitionNode, parse, validate

from ingestion_pipelines.config.chain import ConfigChain
from ingestion_pipelines.control import render
from ingestion_pipelines.control.commands.common import metadata_values
from ingestion_pipelines.control.commands.launch import fit_range
from ingestion_pipelines.control.commands.stats import parse_since, summarize_runs
from ingestion_pipelines.control.commands.status import feed_state
from ingestion_pipelines.control.defs import config_change_job, defs
from ingestion_pipelines.dagster_api.client import DagsterClient, operation, operation_names
from ingestion_pipelines.resources.worker_config import WorkerConfigResource
from ingestion_pipelines_tests.control.helpers import ingest

SECRET = "Pa55-9f1e"


@pytest.fixture(scope="module")
def schema():
    from dagster_graphql.schema import create_schema

    return create_schema().graphql_schema


def test_every_operation_is_valid_against_dagsters_schema(schema) -> None:
    names = operation_names()
    assert {"WorkerStatus", "LaunchRun", "LaunchBackfill", "Health", "WorkerRuns"} <= set(names)
    for name in names:
        document = parse(operation(name))
        assert [e.message for e in validate(schema, document)] == [], name
        [op] = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        assert op.name.value == name  # one operation per file, named like the file


def test_the_guide_names_every_operation() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "control-plane.md").read_text()
    for name in operation_names():
        assert f"{name}.graphql" in guide, name


def test_definitions_load() -> None:
    from ingestion_pipelines.resources.database import DatabaseResource

    resources = {"worker_config": WorkerConfigResource(), "database": DatabaseResource()}
    merged = dg.Definitions.merge(defs(), dg.Definitions(resources=resources))
    repo = merged.get_repository_def()
    assert repo.get_job("config_change") and repo.get_job("retention")
    assert {s.name for s in repo.sensor_defs} == {"ingest_run_alerts", "ingest_check_alerts"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in repo.sensor_defs)


# ---- config_change, in process, on both databases --------------------------------------------


def _run_change(url: str, **config) -> dg.ExecuteInProcessResult:
    return config_change_job.execute_in_process(
        run_config={"ops": {"apply_config_change": {"config": config}}},
        resources={"worker_config": WorkerConfigResource(database_url=url)},
        raise_on_error=False,
        instance=dg.DagsterInstance.ephemeral(),
    )


def _output_metadata(result: dg.ExecuteInProcessResult) -> dict:
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: v.value for k, v in event.step_output_data.metadata.items()}


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
def test_config_change_job(
    backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    chain = ConfigChain(url)
    result = _run_change(
        url, worker_id="fear_greed", key="timeout_s", value="12", requested_by="ann"
    )
    assert result.success
    meta = _output_metadata(result)
    assert (meta["old_value"], meta["new_value"], meta["requested_by"]) == ("null", "12", "ann")
    [row] = chain.rows("fear_greed")
    # no authenticating proxy vouched for anyone: "ann" is recorded as a claim
    assert row["value"] == 12
    assert row["updated_by"].startswith("unverified claim: ann (dagster run ")
    assert chain.get("fear_greed", "timeout_s").layer == "worker_config row"

    # A secret: only as a reference to a variable of the workers' environment.
    hook = f"https://hooks.slack.com/services/T/B/{SECRET}"
    monkeypatch.setenv("FG_HOOK", hook)
    result = _run_change(url, worker_id=None, key="alert_webhook", value=f'"{hook}"')
    assert not result.success
    result = _run_change(url, worker_id=None, key="alert_webhook", value='{"env": "FG_HOOK"}')
    assert result.success
    meta = _output_metadata(result)
    assert meta["secret"] is True and meta["new_value"] == "env:FG_HOOK"
    assert SECRET not in str(meta)
    assert [r["value"] for r in chain.rows() if r["worker_id"] is None] == [{"env": "FG_HOOK"}]

    # Invalid: the run fails with the reason and nothing is written.
    result = _run_change(url, worker_id="fear_greed", key="timeout_s", value="-3")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "greater than 0" in failure.step_failure_data.user_failure_data.description
    assert chain.get("fear_greed", "timeout_s").value == 12

    result = _run_change(url, worker_id="fear_greed", key="timeout_s", unset=True)
    assert result.success and _output_metadata(result)["old_value"] == "12"
    assert chain.rows("fear_greed") == []


def test_config_set_refused_without_touching_dagster(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingestion_pipelines_tests.testbed.base import free_port

    monkeypatch.setenv("INGEST_DATABASE_URL", sqlite_url)
    # Nothing listens there: a refusal must come before any request.
    monkeypatch.setenv("INGEST_DAGSTER_URL", f"http://127.0.0.1:{free_port()}")
    for argv, words in (
        (("fear_greed", "timeout_s", "zero"), "timeout_s"),
        (("fear_greed", "cron", "every minute"), "not a valid cron"),
        (("fear_greed", "colour", "1"), "unknown key"),
        (("ghost", "timeout_s", "1"), "unknown worker"),
    ):
        out = ingest("config", "set", *argv)
        assert out.code == 2, (argv, out)
        assert words in out.err
    out = ingest("config", "unset", "global", "colour")
    assert out.code == 2 and "unknown key" in out.err
    assert ConfigChain(sqlite_url).rows() == []
    # A valid value gets as far as Dagster, which is not there: exit 1, the URL named.
    out = ingest("config", "set", "fear_greed", "timeout_s", "5")
    assert out.code == 1 and "not reachable" in out.err and "127.0.0.1" in out.err


def test_client_error_names_the_url_without_credentials() -> None:
    from ingestion_pipelines.dagster_api.client import ControlError
    from ingestion_pipelines_tests.testbed.base import free_port

    client = DagsterClient(f"http://ops:{SECRET}@127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(ControlError) as info:
        client.execute("Health")
    assert "127.0.0.1" in str(info.value) and SECRET not in str(info.value)
    with pytest.raises(ControlError):
        DagsterClient("ftp://nowhere")


# ---- shaping and text --------------------------------------------------------------------------


def test_parse_since() -> None:
    now = datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since("2w", now) == now - timedelta(days=14)
    assert parse_since(None, now) == now - timedelta(days=7)
    assert parse_since("2026-01-01", now) == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_since("yesterday", now)


def _run(status, start, end, fetched=None):
    entries = [] if fetched is None else [{"label": "records_fetched", "intValue": fetched}]
    return {
        "runId": f"r{start}",
        "status": status,
        "startTime": start,
        "endTime": end,
        "assetMaterializations": [{"metadataEntries": entries}] if entries else [],
    }


def test_summarize_runs() -> None:
    runs = [
        _run("SUCCESS", 0, 10, 30),
        _run("SUCCESS", 100, 104, 10),
        _run("FAILURE", 200, 201),
        _run("STARTED", 300, None),
    ]
    summary = summarize_runs(runs)
    assert (summary["succeeded"], summary["failed"], summary["in_progress"]) == (2, 1, 1)
    assert summary["records_per_run"]["fetched"] == {
        "count": 2,
        "sum": 40,
        "mean": 20.0,
        "median": 20.0,
        "max": 30,
    }
    assert summary["duration_s"]["mean"] == 7.0


def test_metadata_values() -> None:
    values = metadata_values(
        [
            {"label": "records_fetched", "intValue": 3},
            {"label": "duration_s", "floatValue": 1.5},
            {"label": "http", "jsonString": '{"200": 2}'},
            {"label": "table", "text": "fund"},
        ]
    )
    assert values == {"records_fetched": 3, "duration_s": 1.5, "http": {"200": 2}, "table": "fund"}


def test_feed_state_and_status_text() -> None:
    now = datetime(2026, 1, 31, 12, tzinfo=UTC)
    row = {
        "status": "connected",
        "heartbeat_at": (now - timedelta(seconds=4)).replace(tzinfo=None),
        "details": {"lag_s": 0.8, "messages_per_s": 12.5, "connected_since": "2026-01-31T10:00Z"},
        "last_error": f"password={SECRET}",
    }
    state = feed_state(row, now)
    assert state["heartbeat_age_s"] == 4.0 and state["lag_s"] == 0.8
    assert SECRET not in state["last_error"]
    assert feed_state(None) == {"state": "never reported"}
    worker = {
        "worker_id": "binance_trades",
        "kind": "feed",
        "enabled": True,
        "config_enabled": True,
        "switch": {"type": "sensor", "name": "binance_trades_feed", "status": "RUNNING"},
        "last_run": None,
        "last_materialization": {
            "at": (now - timedelta(minutes=3)).isoformat(),
            "partition": "2026-01-31",
            "records": {"inserted": 5},
            "run_id": None,
        },
        "feed": state,
    }
    text = render.status_table([worker], now)
    assert "binance_trades  [feed]  on" in text
    assert "partition 2026-01-31, 5 inserted" in text and "3 min 0 s ago" in text
    assert "lag 0.8 s" in text and "12.5 msg/s" in text


def test_health_text() -> None:
    text = render.health_result(
        {
            "healthy": False,
            "checks": [
                {"name": "webserver", "ok": True, "detail": "x"},
                {"name": "feed ssi_iboard", "ok": False, "detail": "silent"},
            ],
        }
    )
    assert text.splitlines() == [
        "UNHEALTHY",
        "  ok    webserver        x",
        "  FAIL  feed ssi_iboard  silent",
    ]


def test_a_backfill_range_is_fitted_to_the_partition_keys() -> None:
    keys = ["2024-02-07", "2024-02-15", "2024-02-16", "2024-02-19"]  # trading days around Tết
    assert fit_range(keys, "2024-02-08", "2024-02-18") == ("2024-02-15", "2024-02-16")
    assert fit_range(keys, "2024-02-07", "2024-02-19") == ("2024-02-07", "2024-02-19")
    assert fit_range(keys, "2024-02-08", "2024-02-14") is None


def test_status_shows_order_book_resyncs() -> None:
    now = datetime(2026, 1, 31, 12, tzinfo=UTC)
    resync = {"symbol": "BTCUSDT", "reason": "gap", "at": "2026-01-31T11:59:00+00:00"}
    row = {
        "status": "connected",
        "heartbeat_at": now.replace(tzinfo=None),
        "details": {
            "books": 2,
            "books_synced": 1,
            "resyncs": 3,
            "resyncs_by_reason": {"gap": 1, "reconnect": 2},
            "latest_resyncs": [{"symbol": "ETHUSDT", "reason": "reconnect"}, resync],
        },
    }
    state = feed_state(row, now)
    assert state["resyncs"] == 3 and state["last_resync"] == resync
    line = render.book_line(state)
    assert line == (
        "1/2 in sync, 3 resyncs (1 gap, 2 reconnect); last BTCUSDT gap at 2026-01-31T11:59:00+00:00"
    )
    assert "resyncs" not in feed_state({"status": "connected", "details": {"lag_s": 1}}, now)
