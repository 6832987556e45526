"""One-minute bars kept current by the writer as trades commit (issue 12 item 1): exact whatever
order, duplicates, late trades (gap fills), restarts and evicted minutes; published on Redis; and
the daily reconciliation (`trade_bars_1m`) finds nothing to change."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import redis
from sqlalchemy import select

from ingestion_pipelines.derived.trade_bars import build_bars
from ingestion_pipelines.feeds.binance.replay import BinanceServer
from ingestion_pipelines.sidecar.bars import IdRanges
from ingestion_pipelines.sidecar.spool import Spool
from ingestion_pipelines.sidecar.writer import Writer
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import trade_bar_1m
from ingestion_pipelines_tests.sidecar.helpers import (
    assert_exactly_once,
    sidecar_thread,
    wait_all_stored,
)

T0 = datetime(2026, 4, 14, 3, 0, tzinfo=UTC)


def _trade(trade_id: int, at: datetime, price: str, qty: str = "0.5", symbol="BTCUSDT") -> dict:
    return {
        "source": "binance",
        "symbol": symbol,
        "trade_id": trade_id,
        "price": Decimal(price),
        "quantity": Decimal(qty),
        "side": "buy",
        "traded_at": at,
        "received_at": at,
    }


def _writer(url: str, tmp_path, **kwargs) -> Writer:
    return Writer(url, spools=lambda feed: Spool(tmp_path / feed), **kwargs).start()


def _send(writer: Writer, rows: list[dict]) -> None:
    assert writer.submit("binance_trades", "trade_tick", rows, "ignore")
    assert writer.flush(20)


def _bars(url: str) -> dict[tuple, tuple]:
    with ensure_schema(url).connect() as conn:
        rows = conn.execute(select(trade_bar_1m)).mappings().all()
    return {
        (r["symbol"], r["bar_start"]): (r["open"], r["high"], r["low"], r["close"], r["volume"])
        + (r["trade_count"],)
        for r in rows
    }


def _reconcile(url: str):
    return build_bars(ensure_schema(url), T0 - timedelta(hours=1), T0 + timedelta(hours=1))


def test_id_ranges():
    ids = IdRanges()
    assert [ids.add(i) for i in (5, 6, 7, 9, 7, 8, 3, 4, 4, 20)] == [
        True, True, True, True, False, True, True, True, False, True,
    ]  # fmt: skip
    assert len(ids) == 8 and ids._lo == [3, 20] and ids._hi == [9, 20]
    assert not ids.add(9) and ids.add(10) and ids._hi == [10, 20]


def test_bars_follow_commits_exactly(database_url, tmp_path):
    writer = _writer(database_url, tmp_path, batch_rows=50)
    rng = random.Random(7)
    try:
        # minute 0: 40 trades in shuffled batches, with re-sent duplicates
        trades = [
            _trade(
                i,
                T0 + timedelta(seconds=i),
                str(Decimal(100) + Decimal(rng.randint(-500, 500)) / 100),
            )
            for i in range(1, 41)
        ]
        shuffled = trades[:]
        rng.shuffle(shuffled)
        _send(writer, shuffled[:15])
        _send(writer, shuffled[10:30])  # 5 of them again
        _send(writer, shuffled[30:] + shuffled[:3])
        first = _bars(database_url)[("BTCUSDT", T0)]
        assert first[0] == trades[0]["price"] and first[3] == trades[-1]["price"]
        assert first[5] == 40 and first[4] == Decimal("20")
        # a second symbol and the next minutes
        _send(writer, [_trade(1, T0 + timedelta(seconds=61), "3000", symbol="ETHUSDT")])
        _send(writer, [_trade(41 + i, T0 + timedelta(seconds=60 + i), "101") for i in range(30)])
        # a late trade (gap fill) that becomes minute 0's open
        _send(writer, [_trade(0, T0, "90.5", "2")])
        # minutes far ahead evict minute 0 from memory; a later late trade reloads it
        _send(writer, [_trade(500, T0 + timedelta(minutes=10), "102")])
        _send(writer, [_trade(-1, T0 + timedelta(microseconds=1), "95", "1")])
        _send(writer, [_trade(-1, T0 + timedelta(microseconds=1), "95", "1")])  # again
    finally:
        writer.stop()
    # a restarted writer (nothing in memory) merges with what is stored
    writer = _writer(database_url, tmp_path)
    try:
        _send(writer, [_trade(71, T0 + timedelta(seconds=119), "110")])
        _send(writer, [_trade(70, T0 + timedelta(seconds=89), "101")])  # stored already
    finally:
        writer.stop()
    bars = _bars(database_url)
    minute0 = bars[("BTCUSDT", T0)]
    assert minute0[0] == Decimal("90.5") and minute0[5] == 42
    assert minute0[4] == Decimal("23")
    minute1 = bars[("BTCUSDT", T0 + timedelta(minutes=1))]
    assert minute1[3] == Decimal("110") and minute1[5] == 31 and minute1[1] == Decimal("110")
    assert len(bars) == 4
    result = _reconcile(database_url)
    assert result.differences == 0, result.difference_sample
    assert (result.bars.inserted, result.bars.updated, result.bars.unchanged) == (0, 0, 4)
    assert result.check_result().passed


def test_reconciliation_reports_then_fixes_a_difference(sqlite_url, tmp_path):
    writer = _writer(sqlite_url, tmp_path, live_bars=False)  # as if bars were not kept live
    try:
        _send(writer, [_trade(i, T0 + timedelta(seconds=i), "100") for i in range(1, 5)])
    finally:
        writer.stop()
    result = _reconcile(sqlite_url)
    assert result.differences == 1 and not result.check_result().passed
    assert result.difference_sample[0]["stored"] is None
    assert result.difference_sample[0]["recomputed"]["trade_count"] == "4"
    again = _reconcile(sqlite_url)
    assert again.differences == 0 and again.check_result().passed


def test_bars_published_on_redis(mariadb_url, redis_url, tmp_path):
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    pubsub.psubscribe("bars:binance:*")
    assert pubsub.get_message(timeout=2)["type"] == "psubscribe"
    writer = _writer(mariadb_url, tmp_path, publisher=client)
    try:
        _send(writer, [_trade(1, T0 + timedelta(seconds=1), "100.50", "0.25")])
        _send(writer, [_trade(2, T0 + timedelta(seconds=2), "101", "0.75")])
    finally:
        writer.stop()
    messages = []
    deadline = time.monotonic() + 5
    while len(messages) < 2 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message and message["type"] == "pmessage":
            messages.append((message["channel"], orjson.loads(message["data"])))
    pubsub.close()
    assert [m[0] for m in messages] == [b"bars:binance:BTCUSDT"] * 2
    assert messages[-1][1] == {
        "source": "binance",
        "symbol": "BTCUSDT",
        "bar_start": T0.isoformat(),
        "open": "100.5",
        "high": "101",
        "low": "100.5",
        "close": "101",
        "volume": "1",
        "trade_count": 2,
    }


def test_sidecar_bars_equal_a_recomputation(monkeypatch, mariadb_url):
    server = BinanceServer(symbols=["BTCUSDT", "ETHUSDT"], rate=500, paused=True).start()
    monkeypatch.setenv("INGEST_BINANCE_TRADES__BASE_URL", server.url)
    monkeypatch.setenv("INGEST_BINANCE_TRADES__REST_BASE_URL", server.rest_url)
    monkeypatch.setenv("INGEST_BINANCE_TRADES__SYMBOLS", "btcusdt,ethusdt")
    try:
        with sidecar_thread(mariadb_url, ["binance_trades"]):
            assert server.wait_subscribed("BTCUSDT", 1, 15)
            server.resume()
            assert server.wait_trades("BTCUSDT", 300, 15)
            server.skip_ids("ETHUSDT", 20)  # a gap filled from REST: late trades
            assert server.wait_trades("ETHUSDT", server.last_trade_id("ETHUSDT") + 300, 15)
            server.pause()
            started = time.monotonic()
            wait_all_stored(mariadb_url, server)
            # the bars are committed with their trades: there as soon as the trades are
            bars = _bars(mariadb_url)
            waited = time.monotonic() - started
        assert_exactly_once(mariadb_url, server)
    finally:
        server.stop()
    assert waited < 5
    assert sum(b[5] for b in bars.values()) == sum(len(server.trades(s)) for s in server.symbols)
    now = datetime.now(UTC)
    result = build_bars(ensure_schema(mariadb_url), now - timedelta(hours=1), now)
    assert result.differences == 0, result.difference_sample
    assert result.bars.total == len(bars)
