"""The sidecar against a local server speaking Binance's protocol, writing into a real MariaDB.

Each test ends with every trade the server journaled present in `trade_tick` exactly once, with
the price, quantity, side and time the server sent.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import create_engine, select

from ingestion_pipelines.config.chain import ConfigChain
from ingestion_pipelines.feeds.binance.replay import BinanceServer
from ingestion_pipelines.feeds.ssi.feed import ICT
from ingestion_pipelines.storage.tables import dead_letter, worker_state
from ingestion_pipelines_tests.sidecar.helpers import (
    PostRecorder,
    assert_exactly_once,
    count_trades,
    sidecar_thread,
    wait_all_stored,
    wait_until,
)


@pytest.fixture
def binance(monkeypatch, request):
    pings = getattr(request, "param", True)
    server = BinanceServer(
        symbols=["BTCUSDT", "ETHUSDT"],
        rate=400,
        paused=True,
        ping_interval=0.5 if pings else None,
        pong_timeout=2,
    ).start()
    monkeypatch.setenv("INGEST_BINANCE_TRADES__BASE_URL", server.url)
    monkeypatch.setenv("INGEST_BINANCE_TRADES__REST_BASE_URL", server.rest_url)
    monkeypatch.setenv("INGEST_BINANCE_TRADES__SYMBOLS", "btcusdt,ethusdt")
    yield server
    server.stop()


def _rows(url, table):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(table)).mappings().all()
    finally:
        engine.dispose()


def test_drops_shutdowns_malformed_frames_and_skipped_ids(binance, mariadb_url):
    dagster = PostRecorder()
    with sidecar_thread(mariadb_url, ["binance_trades"], dagster_url=dagster.url) as sidecar:
        assert binance.wait_subscribed("BTCUSDT", 1, 15)
        binance.resume()
        # server pings (every 0.5 s, 2 s pong timeout) are answered: the connection stays up
        wait_until(lambda: binance.pings_sent >= 5, 10, "five server pings")
        pongs = lambda: [r for r in binance.received if r.kind == "pong"]  # noqa: E731
        wait_until(lambda: len(pongs()) >= 5, 2, "five pongs")
        assert binance.total_connections == 1
        for round_ in range(3):  # the websocket dropped repeatedly (no close frame)
            assert binance.wait_trades("BTCUSDT", 150 * (round_ + 1), 10)
            assert binance.drop_all() == 1
            assert binance.wait_connections(1, 10)
        binance.skip_ids("ETHUSDT", 25)  # ids the stream never carries: filled from REST
        binance.inject_malformed("{not json")
        binance.inject_malformed(b"\xff\xfe binary junk", text=True)
        binance.send_server_shutdown(close_after_s=0.3)
        wait_until(lambda: binance.total_connections >= 5, 10, "reconnect after serverShutdown")
        assert binance.wait_trades("BTCUSDT", binance.last_trade_id("BTCUSDT") + 100, 10)
        binance.pause()
        wait_all_stored(mariadb_url, binance)
        assert_exactly_once(mariadb_url, binance)
        engine = sidecar.engines["binance_trades"]
        assert engine.filler.stats.found >= 1 and engine.filler.stats.unfilled == 0
        wait_until(
            lambda: any(r["details"]["reconnects"] >= 4 for r in _rows(mariadb_url, worker_state)),
            5,
            "worker_state showing the reconnects",
        )
    letters = _rows(mariadb_url, dead_letter)
    assert [r["payload"] for r in letters][:1] == ["{not json"]
    assert len(letters) == 2 and "not UTF-8" in letters[1]["reason"]
    state = _rows(mariadb_url, worker_state)[0]
    assert state["status"] == "stopped" and state["details"]["gap_trades_filled"] >= 25
    # the materialization of today's ICT partition, reported at shutdown
    dagster.close()
    reports = [b for p, b in dagster.posts if p == "/report_asset_materialization/binance_trades"]
    today = datetime.now(ICT).strftime("%Y-%m-%d")
    assert reports and reports[-1]["partition"] == today
    metadata = reports[-1]["metadata"]
    assert metadata["rows_written"] == sum(len(binance.trades(s)) for s in binance.symbols)
    assert metadata["reconnects"] >= 4 and metadata["gaps_found"] >= 1


def test_unfillable_gap_is_recorded(binance, mariadb_url):
    with sidecar_thread(mariadb_url, ["binance_trades"]) as sidecar:
        assert binance.wait_subscribed("BTCUSDT", 1, 15)
        binance.resume()
        assert binance.wait_trades("BTCUSDT", 50, 10)
        first_skipped = binance.last_trade_id("BTCUSDT") + 1
        binance.skip_ids("BTCUSDT", 10)
        binance.forget_before("BTCUSDT", first_skipped + 10)  # REST history no longer has them
        assert binance.wait_trades("BTCUSDT", first_skipped + 40, 10)
        binance.pause()
        engine = sidecar.engines["binance_trades"]
        wait_until(lambda: engine.filler.stats.unfilled == 10, 10, "the unfilled gap recorded")
        wait_until(
            lambda: _rows(mariadb_url, worker_state)[0]["details"]["gap_trades_unfilled"] == 10,
            5,
            "worker_state showing the unfilled gap",
        )
        assert engine.filler.stats.unfilled_ranges[0][:3] == [
            "BTCUSDT",
            first_skipped,
            first_skipped + 9,
        ]


def test_mariadb_stopped_and_restarted_mid_stream(
    binance, mariadb_url, mariadb_server, isolated_env
):
    with sidecar_thread(mariadb_url, ["binance_trades"], writer={"retry_s": 0.3}) as sidecar:
        assert binance.wait_subscribed("BTCUSDT", 1, 15)
        binance.resume()
        wait_until(lambda: count_trades(mariadb_url) > 200, 10, "trades committed")
        mariadb_server.stop()
        writer = sidecar.engines["binance_trades"].writer
        wait_until(
            lambda: writer.down and writer.metrics_for("binance_trades").spooled_rows > 500,
            15,
            "batches spooled to disk",
        )
        spool = isolated_env / "spool" / "binance_trades"
        assert any(p.stat().st_size for p in spool.iterdir())
        mariadb_server.start()
        wait_until(lambda: not writer.down, 15, "the spool replayed")
        assert binance.wait_trades("BTCUSDT", binance.last_trade_id("BTCUSDT") + 100, 10)
        binance.pause()
        wait_all_stored(mariadb_url, binance)
        assert_exactly_once(mariadb_url, binance)
        assert not [p for p in spool.iterdir() if p.stat().st_size]


def test_symbols_change_applied_without_restart(binance, mariadb_url):
    with sidecar_thread(mariadb_url, ["binance_trades"]) as sidecar:
        assert binance.wait_subscribed("BTCUSDT", 1, 15)
        first = sidecar.engines["binance_trades"]
        ConfigChain(mariadb_url).set("binance_trades", "symbols", ["ethusdt"], updated_by="test")
        took = wait_until(
            lambda: [c.details["streams"] for c in binance.clients()] == [["ethusdt@trade"]],
            30,
            "the new symbols subscribed",
        )
        assert took < 30 and sidecar.engines["binance_trades"] is first  # same engine, no restart
        ConfigChain(mariadb_url).set("binance_trades", "enabled", False, updated_by="test")
        wait_until(lambda: binance.connections == 0, 30, "the feed switched off")
        assert _rows(mariadb_url, worker_state)[0]["status"] == "stopped"


@pytest.mark.parametrize("binance", [False], ids=["no-pings"], indirect=True)
def test_redis_pubsub_live_state_and_silence(binance, mariadb_url, redis_url, monkeypatch):
    import redis

    monkeypatch.setenv("INGEST_BINANCE_TRADES__SILENCE_LIMIT_S", "1.5")
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    pubsub.subscribe("ticks:binance:BTCUSDT")
    with sidecar_thread(mariadb_url, ["binance_trades"], redis_url=redis_url) as sidecar:
        assert binance.wait_subscribed("BTCUSDT", 1, 15)
        binance.resume()
        assert binance.wait_trades("BTCUSDT", 300, 10)
        binance.pause()
        wait_all_stored(mariadb_url, binance)
        published: list[int] = []
        wait_until(
            lambda: _drain(pubsub, published) >= len(binance.trades("BTCUSDT")),
            5,
            "every tick published",
        )
        assert sorted(published) == [t.id for t in binance.trades("BTCUSDT")]
        live = client.hgetall("ingest:feed:binance_trades:live")
        assert live[b"status"] == b"connected" and float(live[b"messages_per_s"]) >= 0
        assert client.get("ingest:lock:binance_trades") == sidecar.ownership.token.encode()
        # no frame at all for longer than silence_limit_s (pings off, market paused): reconnect
        wait_until(lambda: binance.total_connections >= 2, 10, "a reconnect after silence")
    assert client.get("ingest:lock:binance_trades") is None  # released at shutdown


def _drain(pubsub, into: list[int]) -> int:
    import orjson

    while (message := pubsub.get_message(timeout=0.05)) is not None:
        if message["type"] == "message":
            into.extend(row["trade_id"] for row in orjson.loads(message["data"]))
    return len(into)


def test_database_down_at_start(binance, mariadb_url, mariadb_server, isolated_env):
    mariadb_server.stop()
    with sidecar_thread(mariadb_url, ["binance_trades"], writer={"retry_s": 0.3}) as sidecar:
        assert binance.wait_subscribed("BTCUSDT", 1, 20)
        binance.resume()
        writer = sidecar.writers[mariadb_url]
        wait_until(lambda: writer.metrics_for("binance_trades").spooled_rows > 300, 15, "spooled")
        mariadb_server.start()
        wait_until(lambda: not writer.down, 15, "the spool replayed")
        assert binance.wait_trades("BTCUSDT", binance.last_trade_id("BTCUSDT") + 100, 10)
        binance.pause()
        wait_all_stored(mariadb_url, binance)
        assert_exactly_once(mariadb_url, binance)
