"""`/healthz`, `/readyz` and `/metrics` of a real sidecar: trading, with its database down, as a
standby next to an owner, and without Redis to stand by on."""

from __future__ import annotations

import gc
import json
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingestion_pipelines.feeds.binance.replay import BinanceServer
from ingestion_pipelines.sidecar.health import ALIVE_LIMIT_S
from ingestion_pipelines.sidecar.runner import Sidecar, SidecarOptions
from ingestion_pipelines_tests.sidecar.helpers import (
    count_trades,
    free_port,
    sidecar_thread,
    wait_until,
)


@pytest.fixture
def binance(monkeypatch):
    server = BinanceServer(symbols=["BTCUSDT", "ETHUSDT"], rate=300, paused=True).start()
    monkeypatch.setenv("INGEST_BINANCE_TRADES__BASE_URL", server.url)
    monkeypatch.setenv("INGEST_BINANCE_TRADES__REST_BASE_URL", server.rest_url)
    monkeypatch.setenv("INGEST_BINANCE_TRADES__SYMBOLS", "btcusdt,ethusdt")
    yield server
    server.stop()


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:  # not listening (yet, or any more)
        return 0, str(exc)


def metrics(port: int) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, parsed by Prometheus's reference parser."""
    status, text = get(port, "/metrics")
    if status != 200:
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def shard_value(values, name: str, shard: str = "binance_trades") -> float | None:
    return values.get((name, (("feed", "binance_trades"), ("shard", shard))))


def readiness(port: int) -> tuple[int, dict]:
    status, body = get(port, "/readyz")
    return status, json.loads(body)


def test_endpoints_while_trading(binance, mariadb_url):
    port = free_port()
    with sidecar_thread(mariadb_url, ["binance_trades"], http_port=port):
        wait_until(lambda: get(port, "/healthz")[0] == 200, 10, "alive")
        assert binance.wait_subscribed("BTCUSDT", 1, 15)
        binance.resume()
        wait_until(lambda: count_trades(mariadb_url) > 300, 20, "trades committed")
        status, body = readiness(port)
        assert status == 200, body
        assert body["checks"] == {
            "supervisor": "ok",
            "ownership": "ok",
            "database": "ok",
            "spool": "ok",
            "writer": "ok",
        }
        assert body["owned_shards"] == ["binance_trades"]

        values = metrics(port)
        stored = count_trades(mariadb_url)
        assert shard_value(values, "ingest_sidecar_messages_total") >= 300
        assert shard_value(values, "ingest_sidecar_rows_committed_total") >= 300
        assert shard_value(values, "ingest_sidecar_trades_committed_total") <= stored
        assert 0 <= shard_value(values, "ingest_sidecar_lag_seconds") < 10
        assert shard_value(values, "ingest_sidecar_reconnects_total") == 0
        assert shard_value(values, "ingest_sidecar_gaps_total") == 0
        assert shard_value(values, "ingest_sidecar_spool_bytes") == 0
        assert shard_value(values, "ingest_sidecar_shard_owned") == 1
        assert values[("ingest_sidecar_owned_shards", (("feed", "binance_trades"),))] == 1

        binance.skip_ids("BTCUSDT", 5)  # a gap: found, counted, filled from REST
        wait_until(
            lambda: (
                (shard_value(metrics(port), "ingest_sidecar_gap_trades_filled_total") or 0) >= 5
            ),
            15,
            "the gap filled",
        )
        assert get(port, "/nothing")[0] == 404
    assert get(port, "/healthz")[0] == 0  # stopped with the sidecar


def test_not_ready_while_the_database_is_down_and_the_spool_grows(binance, tmp_path):
    port = free_port()
    down = f"mysql+pymysql://ingest:s3cret-pw@127.0.0.1:{free_port()}/ingest"
    with sidecar_thread(down, ["binance_trades"], http_port=port):
        assert binance.wait_subscribed("BTCUSDT", 1, 15)
        binance.resume()
        wait_until(
            lambda: (shard_value(metrics(port), "ingest_sidecar_spool_bytes") or 0) > 0,
            20,
            "trades spooled",
        )
        wait_until(lambda: get(port, "/readyz")[0] == 503, 10, "not ready")
        wait_until(lambda: readiness(port)[1]["checks"]["spool"] != "ok", 10, "spool growing")
        status, body = readiness(port)
        assert status == 503
        assert body["checks"]["database"].startswith("database unreachable")
        assert "s3cret-pw" not in json.dumps(body)
        assert get(port, "/healthz")[0] == 200  # alive: no restart, the spool keeps everything
        values = metrics(port)
        assert values[("ingest_sidecar_replica_spool_bytes", ())] > 0
        assert shard_value(values, "ingest_sidecar_rows_committed_total") == 0


def test_a_standby_is_ready_and_owns_nothing(binance, mariadb_url, redis_url):
    ports = [free_port(), free_port()]
    # two replicas as `ingest sidecar` runs them: each with its writer process
    options = {"redis_url": redis_url, "writer_process": True}
    with (
        sidecar_thread(mariadb_url, ["binance_trades"], http_port=ports[0], **options),
        sidecar_thread(mariadb_url, ["binance_trades"], http_port=ports[1], **options),
    ):
        owned = lambda p: metrics(p).get(  # noqa: E731
            ("ingest_sidecar_owned_shards", (("feed", "binance_trades"),))
        )
        wait_until(lambda: sorted(owned(p) or 0 for p in ports) == [0, 1], 15, "one owner")
        wait_until(lambda: None not in [owned(p) for p in ports], 10, "both serving")
        wait_until(lambda: all(readiness(p)[0] == 200 for p in ports), 10, "both ready")
        live = lambda p: metrics(p).get(("ingest_sidecar_live_replicas", ()))  # noqa: E731
        wait_until(lambda: [live(p) for p in ports] == [2, 2], 5, "each sees the other")
        bodies = [readiness(p)[1] for p in ports]
        assert sorted(len(b["owned_shards"]) for b in bodies) == [0, 1]


def test_not_ready_without_redis_to_stand_by_on(binance, mariadb_url):
    port = free_port()
    redis_down = f"redis://127.0.0.1:{free_port()}/0"
    with sidecar_thread(mariadb_url, ["binance_trades"], redis_url=redis_down, http_port=port):
        wait_until(lambda: get(port, "/healthz")[0] == 200, 10, "alive")
        status, body = readiness(port)
        assert status == 503
        assert body["checks"]["ownership"].startswith("no fresh heartbeat")
        assert body["owned_shards"] == []
        assert body["checks"]["database"] == "ok"


def test_alive_only_while_the_supervisor_turns(binance, mariadb_url):
    port = free_port()
    sidecar = Sidecar(
        SidecarOptions(database_url=mariadb_url, feeds=["binance_trades"], http_port=port)
    ).start()
    try:
        status, body = get(port, "/healthz")
        assert (status, body) == (503, "stuck\n")  # started, but the loop never turned
        assert readiness(port)[1]["checks"]["supervisor"] != "ok"
        sidecar.tick()
        assert get(port, "/healthz") == (200, "ok\n")
        sidecar.last_tick_at -= ALIVE_LIMIT_S  # as if the loop had hung since
        assert get(port, "/healthz")[0] == 503
    finally:
        sidecar.shutdown()


def test_the_objects_of_start_up_are_out_of_the_collectors_reach(binance, mariadb_url):
    """Full garbage collections scanned every object made at start-up and paused the feeds for
    100-250 ms at 10,000 messages/s: once the feeds have started, those objects are frozen."""
    gc.unfreeze()
    try:
        with sidecar_thread(mariadb_url, ["binance_trades"]) as sidecar:
            wait_until(lambda: gc.get_freeze_count() > 0, 20, "the start-up freeze")
            assert sidecar.engines  # the freeze came after the feeds started
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
