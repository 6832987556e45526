"""The sidecar against a real dagster-webserver and dagster-daemon on the project's workspace:
its materializations show in Dagster, and the operator's switch in Dagster stops and restarts
the feed within 30 s, with every trade still stored exactly once."""

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from ingestion_pipelines.core.settings import PROJECT_ROOT
from ingestion_pipelines.dagster_api.feed_switches import FeedControl
from ingestion_pipelines.feeds.binance.replay import BinanceServer
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import worker_state
from ingestion_pipelines_tests.fakes.dagster_stack import DagsterStack
from ingestion_pipelines_tests.sidecar.helpers import (
    assert_exactly_once,
    count_trades,
    sidecar_thread,
    wait_all_stored,
    wait_until,
)

MATERIALIZATIONS = """
query ($partition: String!) {
  assetOrError(assetKey: {path: ["binance_trades"]}) {
    ... on Asset {
      assetMaterializations(partitions: [$partition]) {
        partition
        metadataEntries { label ... on IntMetadataEntry { intValue } }
      }
    }
  }
}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("feed_stack")
    database_url = f"sqlite:///{root / 'ingest.db'}"
    ensure_schema(database_url)
    env = {"INGEST_DATABASE_URL": database_url, "INGEST_LOCAL_DIR": str(root / "local")}
    with DagsterStack(PROJECT_ROOT / "workspace.yaml", root=root, env=env) as running:
        running.database_url = database_url
        yield running


def status(database_url: str) -> str | None:
    with ensure_schema(database_url).connect() as conn:
        return conn.execute(
            select(worker_state.c.status).where(worker_state.c.worker_id == "binance_trades")
        ).scalar_one_or_none()


def test_reports_reach_dagster_and_the_operator_switch_is_followed(stack, monkeypatch):
    database_url = stack.database_url
    control = FeedControl(stack.url, timeout_s=5)
    assert control.fetch()["binance_trades"] is True  # the switch is on by default
    # Paused until the sidecar is connected: trades made before it ever connected were never
    # sent to it (it starts from the first trade it receives).
    with BinanceServer(symbols=("BTCUSDT",), rate=40.0, paused=True) as server:
        monkeypatch.setenv("INGEST_BINANCE_TRADES__BASE_URL", server.url)
        monkeypatch.setenv("INGEST_BINANCE_TRADES__REST_BASE_URL", server.rest_url)
        monkeypatch.setenv("INGEST_BINANCE_TRADES__SYMBOLS", "btcusdt")
        with sidecar_thread(
            database_url, ["binance_trades"], dagster_url=stack.url, report_interval_s=1.0
        ):
            server.wait_connections(1, 30)
            server.resume()
            wait_until(lambda: count_trades(database_url) > 20, 30, "trades stored")
            today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).date().isoformat()

            def rows_reported() -> int:
                asset = stack.graphql(MATERIALIZATIONS, {"partition": today})["assetOrError"]
                return max(
                    (
                        e["intValue"]
                        for m in asset["assetMaterializations"]
                        for e in m["metadataEntries"]
                        if e.get("intValue") is not None and e["label"].startswith("rows")
                    ),
                    default=0,
                )

            wait_until(lambda: rows_reported() > 0, 30, "a materialization of today's partition")

            switched_off = time.monotonic()
            control.set_enabled("binance_trades", False)
            wait_until(lambda: server.connections == 0, 30, "the feed disconnected")
            assert time.monotonic() - switched_off < 30
            wait_until(lambda: status(database_url) == "stopped", 10, "worker_state says stopped")

            switched_on = time.monotonic()
            control.set_enabled("binance_trades", True)
            wait_until(lambda: server.connections == 1, 30, "the feed reconnected")
            assert time.monotonic() - switched_on < 30
            before = count_trades(database_url)
            wait_until(lambda: count_trades(database_url) > before + 20, 30, "trades again")
            server.pause()
            wait_all_stored(database_url, server)
    # The trades sent while the feed was off were filled from REST: none missing, none twice.
    assert_exactly_once(database_url, server)
