"""The Dagster side of the feeds: external assets, the heartbeat check and the switch sensors."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from ingestion_pipelines.feeds import defs as feed_defs
from ingestion_pipelines.feeds.base import feed_classes
from ingestion_pipelines.resources.database import DatabaseResource
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import worker_state
from ingestion_pipelines.storage.upsert import upsert

FEED = "binance_trades"


def _state(url: str, **values) -> None:
    row = {
        "worker_id": FEED,
        "status": "running",
        "heartbeat_at": None,
        "last_success_at": None,
        "last_error": None,
        "details": None,
        **values,
    }
    upsert(ensure_schema(url), worker_state, [row])


def _defs(url: str | None = None) -> dg.Definitions:
    resources = {"database": DatabaseResource(url=url)}
    return dg.Definitions.merge(feed_defs.defs(), dg.Definitions(resources=resources))


def _sensor(worker_id: str = FEED) -> dg.SensorDefinition:
    return feed_defs.feed_switch_sensor(feed_classes()[worker_id])


def _tick(url: str, cursor: str | None = None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        resources={"database": DatabaseResource(url=url)}, cursor=cursor
    )
    result = _sensor()(context)
    assert isinstance(result, dg.SensorResult)
    return result


def _evaluation(result: dg.SensorResult) -> dg.AssetCheckEvaluation:
    [event] = result.asset_events
    assert isinstance(event, dg.AssetCheckEvaluation)
    assert event.asset_key == dg.AssetKey([FEED])
    assert event.check_name == "heartbeat"
    return event


def test_defs_declare_an_external_asset_check_and_switch_per_feed():
    defs = _defs()
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert feed_classes(), "no feed registered"
    for worker_id, feed in feed_classes().items():
        key = dg.AssetKey([worker_id])
        node = graph.get(key)
        assert not node.is_materializable  # external: the sidecar reports it
        assert node.group_name == "feeds"
        partitions = node.partitions_def
        assert isinstance(partitions, dg.DailyPartitionsDefinition)
        assert partitions.timezone == "Asia/Ho_Chi_Minh"
        assert node.metadata["tables"].value == list(feed.tables)
        # Feeds silent by nature at times (SSI outside trading hours) opt out of the time window.
        wants_freshness = bool(getattr(feed, "freshness_fail_s", 900))
        assert (node.freshness_policy is not None) == wants_freshness
        assert dg.AssetCheckKey(key, "heartbeat") in graph.asset_check_keys
        sensor = defs.resolve_sensor_def(f"{worker_id}_feed")
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert sensor.minimum_interval_seconds == 30


def test_fresh_heartbeat_passes(sqlite_url):
    _state(sqlite_url, heartbeat_at=datetime.now(UTC) - timedelta(seconds=5))
    evaluation = _evaluation(_tick(sqlite_url))
    assert evaluation.passed
    assert "binance_trades is alive" in evaluation.description
    assert evaluation.metadata["status"].value == "running"


def test_old_heartbeat_fails_naming_feed_silence_and_last_error(sqlite_url):
    _state(
        sqlite_url,
        status="reconnecting",
        heartbeat_at=datetime.now(UTC) - timedelta(minutes=10),
        last_error="connection reset by peer",
    )
    evaluation = _evaluation(_tick(sqlite_url))
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert "binance_trades has been silent for 10 min" in evaluation.description
    assert "connection reset by peer" in evaluation.description
    assert evaluation.metadata["silent_s"].value >= 600


def test_no_row_yet_is_reported_as_never_reported(sqlite_url):
    evaluation = _evaluation(_tick(sqlite_url))
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "binance_trades has never reported" in evaluation.description


def test_passing_check_is_not_re_reported_every_tick_but_failures_are(sqlite_url):
    _state(sqlite_url, heartbeat_at=datetime.now(UTC))
    first = _tick(sqlite_url)
    assert len(first.asset_events) == 1
    second = _tick(sqlite_url, cursor=first.cursor)
    assert second.asset_events == [] and second.skip_reason is not None
    old = json.loads(first.cursor)
    old["reported_at"] -= feed_defs.PASSING_REPORT_EVERY_S
    assert len(_tick(sqlite_url, cursor=json.dumps(old)).asset_events) == 1

    _state(sqlite_url, heartbeat_at=datetime.now(UTC) - timedelta(minutes=5))
    failing = _tick(sqlite_url, cursor=first.cursor)
    assert not _evaluation(failing).passed
    assert not _evaluation(_tick(sqlite_url, cursor=failing.cursor)).passed


def test_secrets_in_last_error_are_redacted():
    verdict = feed_defs.judge_heartbeat(
        FEED,
        {
            "status": "error",
            "heartbeat_at": datetime.now(UTC) - timedelta(hours=3),
            "last_error": "cannot reach mysql://ingest:s3cr3tpw@db/ingest",
        },
    )
    assert "s3cr3tpw" not in verdict.description
    assert "s3cr3tpw" not in str(verdict.metadata["last_error"].value)
    assert "3 h 0 min" in verdict.description


def test_heartbeat_check_can_be_executed_on_demand(sqlite_url):
    _state(sqlite_url, heartbeat_at=datetime.now(UTC))
    feed = feed_classes()[FEED]
    result = dg.materialize(
        [feed_defs.feed_asset_spec(feed), feed_defs.feed_heartbeat_check(feed)],
        resources={"database": DatabaseResource(url=sqlite_url)},
        selection=dg.AssetSelection.all_asset_checks(),
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed


@pytest.mark.parametrize("age_s, passed", [(1, True), (3600, False)])
def test_sensor_reads_worker_state_on_every_database(database_url, age_s, passed):
    _state(database_url, heartbeat_at=datetime.now(UTC) - timedelta(seconds=age_s))
    assert _evaluation(_tick(database_url)).passed is passed
