"""The sidecar's Dagster side against a real `dagster-webserver` + `dagster-daemon`:
reports of materializations, the feed switches, and an unreachable webserver."""

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from loguru import logger

from ingestion_pipelines.dagster_api.feed_switches import FeedControl, FeedControlError
from ingestion_pipelines.sidecar.reporter import DagsterReporter, metadata_json
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import worker_state
from ingestion_pipelines.storage.upsert import upsert
from ingestion_pipelines_tests.fakes.dagster_stack import DagsterStack, wait_until, write_workspace
from ingestion_pipelines_tests.fakes.http_origin import HttpOrigin, Reply
from ingestion_pipelines_tests.testbed.base import free_port

WORKSPACE_CODE = """
import dagster as dg

from ingestion_pipelines.resources.worker_config import WorkerConfigResource
from ingestion_pipelines.derived.defs import defs as derived_defs
from ingestion_pipelines.feeds.defs import defs as feed_defs
from ingestion_pipelines.resources.database import DatabaseResource

defs = dg.Definitions.merge(
    feed_defs(),
    derived_defs(),
    dg.Definitions(
        resources={"database": DatabaseResource(), "worker_config": WorkerConfigResource()}
    ),
)
"""

MATERIALIZATIONS = """
query ($key: AssetKeyInput!, $partition: String!) {
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(partitions: [$partition]) {
        partition
        description
        metadataEntries {
          __typename
          label
          ... on IntMetadataEntry { intValue }
          ... on FloatMetadataEntry { floatValue }
          ... on TextMetadataEntry { text }
          ... on BoolMetadataEntry { boolValue }
          ... on JsonMetadataEntry { jsonString }
        }
      }
      assetObservations { metadataEntries { label ... on TextMetadataEntry { text } } }
    }
  }
}
"""

CHECK_EXECUTIONS = """
query ($key: AssetKeyInput!) {
  assetCheckExecutions(assetKey: $key, checkName: "heartbeat", limit: 1) {
    evaluation { success severity description }
  }
}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterStack]:
    root = tmp_path_factory.mktemp("dagster_stack")
    database_url = f"sqlite:///{root / 'ingest.db'}"
    # binance_trades has a fresh heartbeat; ssi_iboard never reported.
    upsert(
        ensure_schema(database_url),
        worker_state,
        [
            {
                "worker_id": "binance_trades",
                "status": "running",
                "heartbeat_at": datetime.now(UTC) + timedelta(minutes=5),  # fresh for the run
                "last_success_at": datetime.now(UTC),
                "last_error": None,
                "details": None,
            }
        ],
    )
    workspace = write_workspace(root / "workspace", WORKSPACE_CODE)
    env = {"INGEST_DATABASE_URL": database_url, "INGEST_LOCAL_DIR": str(root / "local")}
    with DagsterStack(workspace, root=root, env=env) as running:
        yield running


def _entries(stack: DagsterStack, worker_id: str, partition: str) -> tuple[list, list]:
    data = stack.graphql(MATERIALIZATIONS, {"key": {"path": [worker_id]}, "partition": partition})
    asset = data["assetOrError"]
    return asset["assetMaterializations"], asset["assetObservations"]


def test_materialization_metadata_is_visible_for_its_partition(stack):
    reporter = DagsterReporter(stack.url).start()
    first_trade = datetime(2025, 6, 1, 17, 0, 1, tzinfo=UTC)
    reporter.report_materialization(
        "binance_trades",
        "2025-06-02",
        {
            "rows": 812,
            "lag_s": 0.25,
            "first_trade_at": first_trade,
            "last_price": Decimal("67012.10"),
            "symbols": "BTCUSDT,ETHUSDT",
            "gap_filled": False,
            "skipped": None,
        },
    )
    reporter.heartbeat("binance_trades", "running", {"connections": 1})
    reporter.heartbeat("binance_trades", "running", {"connections": 1})  # unchanged: not posted
    reporter.heartbeat("binance_trades", "reconnecting", {"reason": "server going away"})
    assert reporter.stop(timeout_s=10)
    assert reporter.stats()["sent"] == 3 and reporter.failures == 0

    materializations, observations = _entries(stack, "binance_trades", "2025-06-02")
    [mat] = materializations
    assert mat["partition"] == "2025-06-02"
    entries = {e["label"]: e for e in mat["metadataEntries"]}
    assert entries["rows"]["__typename"] == "IntMetadataEntry"
    assert entries["rows"]["intValue"] == 812
    assert entries["lag_s"]["floatValue"] == 0.25
    assert entries["first_trade_at"]["text"] == "2025-06-01T17:00:01+00:00"
    assert entries["last_price"]["text"] == "67012.10"
    assert entries["symbols"]["text"] == "BTCUSDT,ETHUSDT"
    assert entries["gap_filled"]["boolValue"] is False
    assert "skipped" not in entries
    statuses = [
        e["text"] for o in observations for e in o["metadataEntries"] if e["label"] == "status"
    ]
    assert sorted(statuses) == ["reconnecting", "running"]
    assert _entries(stack, "binance_trades", "2025-06-01")[0] == []


def test_feed_control_follows_the_switch_sensors(stack):
    operator = FeedControl(stack.url, refresh_s=60).start()  # what `ingest stop/start` uses
    sidecar = FeedControl(stack.url, refresh_s=0.2).start()
    try:
        assert sidecar.enabled("binance_trades") is True
        assert sidecar.enabled("ssi_iboard") is True
        assert sidecar.enabled("no_such_feed") is None

        assert operator.set_enabled("binance_trades", False) is False
        wait_until(
            lambda: sidecar.enabled("binance_trades") is False, 5, what="the switch to turn off"
        )
        assert sidecar.enabled("ssi_iboard") is True

        assert operator.set_enabled("binance_trades", True) is True
        wait_until(lambda: sidecar.enabled("binance_trades") is True, 5, what="the switch on")

        with pytest.raises(FeedControlError, match="no_such_feed"):
            operator.set_enabled("no_such_feed", False)
    finally:
        operator.stop()
        sidecar.stop()


def test_switch_sensor_reports_the_heartbeat_check(stack):
    stack.wait_for_daemon(60)

    def latest(worker_id: str):
        data = stack.graphql(CHECK_EXECUTIONS, {"key": {"path": [worker_id]}})
        executions = data["assetCheckExecutions"]
        return executions[0]["evaluation"] if executions and executions[0]["evaluation"] else None

    alive = wait_until(lambda: latest("binance_trades"), 60, interval_s=0.5, what="a check")
    assert alive["success"] is True
    silent = wait_until(lambda: latest("ssi_iboard"), 60, interval_s=0.5, what="a check")
    assert silent["success"] is False
    assert silent["severity"] == "WARN"
    assert "ssi_iboard has never reported" in silent["description"]


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG", format="{message}")
    yield lines
    logger.remove(sink)


def test_reporter_survives_an_unreachable_webserver(log_lines):
    port = free_port()  # nothing listens there
    url = f"http://ops:Sup3rSecretPw@127.0.0.1:{port}"
    reporter = DagsterReporter(url, timeout_s=1, max_queue=3, backoff_initial_s=0.02).start()
    for n in range(10):
        reporter.report_materialization("binance_trades", "2025-06-02", {"rows": n})
    reporter.heartbeat("binance_trades", "running", {})
    wait_until(lambda: reporter.failures >= 3, 10, what="failed attempts")
    assert reporter.dropped == 8  # 11 events, a queue of 3: the oldest went
    assert reporter.sent == 0
    assert reporter.stop(timeout_s=0.3) is False
    assert reporter.unsent == 3
    text = "\n".join(log_lines) + str(reporter.stats())
    assert "unreachable" in text
    assert "Sup3rSecretPw" not in text
    # after stop, reports are still accepted without raising
    reporter.report_materialization("binance_trades", "2025-06-02", {"rows": 1})


def test_reporter_retries_until_the_webserver_answers_and_drops_refused_events():
    with HttpOrigin() as origin:
        path = "/report_asset_materialization/binance_trades"
        origin.set(path, Reply(503), Reply(502), Reply(200, body="{}"))
        origin.set("/report_asset_materialization/bad", Reply(400, body='{"error": "bad"}'))
        url = origin.url("").replace("http://", "http://ops:pw-in-url@")
        reporter = DagsterReporter(url, backoff_initial_s=0.01).start()
        reporter.report_materialization("bad", None, {})
        reporter.report_materialization("binance_trades", "2025-06-02", {"rows": 5})
        assert reporter.flush(10)
        reporter.stop()
        assert (reporter.rejected, reporter.failures, reporter.sent) == (1, 2, 1)
        requests = origin.requests_for(path)
        assert len(requests) == 3
        body = json.loads(requests[-1].body)
        assert body == {"partition": "2025-06-02", "metadata": {"rows": 5}}
        assert requests[-1].headers["authorization"].startswith("Basic ")


def test_metadata_values_map_to_json_types():
    naive = datetime(2025, 6, 2, 1, 2, 3)
    assert metadata_json(
        {
            "n": 3,
            "x": 1.5,
            "nan": float("nan"),
            "t": naive,
            "d": Decimal("1E-8"),
            "j": {"a": [1, Decimal("2.5")]},
            "none": None,
            "dsn": "mysql://u:hunter2pw@db/x",
        }
    ) == {
        "n": 3,
        "x": 1.5,
        "nan": "nan",
        "t": "2025-06-02T01:02:03+00:00",
        "d": "0.00000001",
        "j": {"a": [1, "2.5"]},
        "dsn": "mysql://u:***@db/x",
    }


def test_stack_fixture_is_torn_down(tmp_path: Path):
    workspace = write_workspace(tmp_path / "ws", "import dagster as dg\ndefs = dg.Definitions()\n")
    stack = DagsterStack(workspace, root=tmp_path / "stack", daemon=False).start()
    procs = list(stack.procs.values())
    stack.close()
    assert all(p.poll() is not None for p in procs)
    assert stack.live_processes() == []  # code servers included
    started = time.monotonic()
    with pytest.raises(FeedControlError):
        FeedControl(stack.url, timeout_s=1).fetch()
    assert time.monotonic() - started < 5
