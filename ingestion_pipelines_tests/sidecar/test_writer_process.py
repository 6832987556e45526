"""The writer in its own process: killed with SIGKILL mid-stream, it is restarted and every
unacknowledged batch is sent again, so every trade is stored exactly once and the bars still
equal a recomputation from the trades; the sidecar itself never stops."""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, select

from ingestion_pipelines.derived.trade_bars import aggregate_bars
from ingestion_pipelines.feeds.binance.replay import BinanceServer
from ingestion_pipelines.sidecar.writer_process import ProcessWriter
from ingestion_pipelines.storage.dead_letters import dead_letter_row
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import dead_letter, trade_bar_1m, trade_tick
from ingestion_pipelines_tests.sidecar.helpers import (
    assert_exactly_once,
    count_trades,
    sidecar_thread,
    trade_row,
    wait_all_stored,
    wait_until,
)


@pytest.fixture
def binance(monkeypatch):
    server = BinanceServer(symbols=["BTCUSDT"], rate=2000, paused=True, ping_interval=None)
    server.start()
    monkeypatch.setenv("INGEST_BINANCE_TRADES__BASE_URL", server.url)
    monkeypatch.setenv("INGEST_BINANCE_TRADES__REST_BASE_URL", server.rest_url)
    monkeypatch.setenv("INGEST_BINANCE_TRADES__SYMBOLS", "btcusdt")
    yield server
    server.stop()


def _bars(url: str) -> tuple[list, list]:
    """(stored bars, bars recomputed from trade_tick), both sorted."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(select(trade_bar_1m)).mappings().all()
            t = trade_tick.c
            query = select(trade_tick).order_by(t.source, t.symbol, t.traded_at, t.trade_id)
            trades = conn.execute(query).mappings().all()
    finally:
        engine.dispose()
    names = ("symbol", "bar_start", "open", "high", "low", "close", "volume", "trade_count")
    got = sorted(tuple(b[n] for n in names) for b in stored)
    want = sorted(tuple(b[n] for n in names) for b in aggregate_bars(trades))
    return got, want


def test_writer_process_killed_mid_stream_loses_nothing(binance, mariadb_url):
    with sidecar_thread(mariadb_url, ["binance_trades"], writer_process=True) as sidecar:
        assert binance.wait_subscribed("BTCUSDT", 1, 15)
        writer = sidecar.writers[mariadb_url]
        assert isinstance(writer, ProcessWriter)
        binance.resume()
        for kill in range(2):
            enough = 1000 * (kill + 1)
            wait_until(lambda n=enough: count_trades(mariadb_url) > n, 20, "trades flowing")
            first = writer.child_pid
            os.kill(first, signal.SIGKILL)
            wait_until(lambda pid=first: writer.child_pid != pid, 10, "a new writer process")
            assert writer.restarts == kill + 1
        wait_until(lambda: count_trades(mariadb_url) > 4000, 20, "trades flowing after restarts")
        assert sidecar.engines["binance_trades"].reconnects == 0  # the feed never stopped
        binance.pause()
        wait_all_stored(mariadb_url, binance)
        assert writer.flush(10)
    assert_exactly_once(mariadb_url, binance)
    got, want = _bars(mariadb_url)
    assert got and got == want


def test_writer_process_spools_while_the_database_is_down(
    binance, mariadb_url, mariadb_server, isolated_env
):
    with sidecar_thread(
        mariadb_url, ["binance_trades"], writer={"retry_s": 0.3}, writer_process=True
    ) as sidecar:
        assert binance.wait_subscribed("BTCUSDT", 1, 15)
        writer = sidecar.writers[mariadb_url]
        binance.resume()
        wait_until(lambda: count_trades(mariadb_url) > 500, 10, "trades committed")
        mariadb_server.stop()
        wait_until(
            lambda: writer.down and writer.metrics_for("binance_trades").spooled_rows > 500,
            15,
            "batches spooled to disk by the writer process",
        )
        spool = isolated_env / "spool" / "binance_trades"
        assert any(p.stat().st_size for p in spool.iterdir())
        mariadb_server.start()
        wait_until(lambda: not writer.down, 15, "the spool replayed")
        binance.pause()
        wait_all_stored(mariadb_url, binance)
        assert not [p for p in spool.iterdir() if p.stat().st_size]
    assert_exactly_once(mariadb_url, binance)
    got, want = _bars(mariadb_url)
    assert got and got == want


def test_writer_process_leaves_signals_to_the_sidecar(binance, mariadb_url):
    """Ctrl-C reaches the whole process group: the writer process keeps writing until the
    sidecar stops it (after its last flush)."""
    with sidecar_thread(mariadb_url, ["binance_trades"], writer_process=True) as sidecar:
        assert binance.wait_subscribed("BTCUSDT", 1, 15)
        writer = sidecar.writers[mariadb_url]
        binance.resume()
        wait_until(lambda: count_trades(mariadb_url) > 200, 10, "trades flowing")
        for sig in (signal.SIGINT, signal.SIGTERM):
            os.kill(writer.child_pid, sig)
        wait_until(lambda: count_trades(mariadb_url) > 1500, 10, "trades still flowing")
        assert writer.restarts == 0
        binance.pause()
        wait_all_stored(mariadb_url, binance)
    assert_exactly_once(mariadb_url, binance)


def stored_ids_and_letters(database_url: str) -> tuple[list[int], list[tuple[str, str]]]:
    """The trade ids in `trade_tick`, sorted, and each dead letter's (reason, payload)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            ids = conn.execute(select(trade_tick.c.trade_id)).scalars().all()
            letters = conn.execute(select(dead_letter.c.reason, dead_letter.c.payload)).all()
    finally:
        engine.dispose()
    return sorted(int(i) for i in ids), [(reason, payload) for reason, payload in letters]


def test_writer_process_isolates_a_refused_row_and_reports_its_metrics(mariadb_url, tmp_path):
    """Poison bisection runs in the child as in the thread: the refused row goes to
    dead_letter, the rest commits, and the counts come back to the sidecar's side."""
    ensure_schema(mariadb_url)
    writer = ProcessWriter(mariadb_url, spool_dir=tmp_path).start()
    try:
        rows = [trade_row(i) for i in range(1, 40)]
        rows[17] = trade_row(18, price="1e40")  # out of DECIMAL(38, 18) range
        for row in rows:
            assert writer.submit("binance_trades", "trade_tick", [row], "ignore")
        assert writer.flush(20)
        metrics = writer.metrics_for("binance_trades")
        assert (metrics.trades_written, metrics.dead_letters) == (38, 1)
    finally:
        assert writer.stop()
    ids, letters = stored_ids_and_letters(mariadb_url)
    assert ids == [i for i in range(1, 40) if i != 18]
    assert len(letters) == 1 and "refused by the database (trade_tick)" in letters[0][0]


def test_dead_letters_committed_before_a_lost_ack_are_stored_once(mariadb_url, tmp_path):
    """The child commits a batch holding a bad frame's dead letter and a refused row, and is
    killed before its acknowledgement is taken: the new child gets the batch again, and the
    trades (natural key) and the dead letters (fingerprint) are each stored once."""
    ensure_schema(mariadb_url)
    writer = ProcessWriter(mariadb_url, spool_dir=tmp_path).start()
    killed: list[int] = []
    take_ack = writer._acked

    def kill_before_taking_the_ack(*ack) -> None:  # the receiver thread calls it
        if killed:
            take_ack(*ack)
            return
        killed.append(writer.child_pid)  # committed (it acknowledges after the commit) ...
        os.kill(killed[0], signal.SIGKILL)  # ... and gone before the sidecar heard of it

    writer._acked = kill_before_taking_the_ack
    frame = b'{"stream":"btcusdt@trade","data":{"e":"trade","p":"not a price"}}'
    letter = dead_letter_row(
        "binance_trades", "unreadable frame", frame, received_at=datetime.now(UTC)
    )
    rows = [trade_row(i) for i in range(1, 11)]
    rows[4] = trade_row(5, price="1e40")  # refused by the database: a dead letter of its own
    try:
        assert writer.submit("binance_trades", "dead_letter", [letter], "ignore")
        assert writer.submit("binance_trades", "trade_tick", rows, "ignore")
        assert writer.flush(30)
        assert killed and writer.restarts == 1 and writer.child_pid != killed[0]
        assert writer.metrics_for("binance_trades").dead_letters == 2
    finally:
        assert writer.stop()
    ids, letters = stored_ids_and_letters(mariadb_url)
    assert ids == [i for i in range(1, 11) if i != 5]
    assert sorted(reason.split(":")[0] for reason, _ in letters) == [
        "refused by the database (trade_tick)",
        "unreadable frame",
    ], letters
    assert frame.decode() in {payload for _, payload in letters}


def test_a_writer_process_that_keeps_dying_fails_the_probes(binance, mariadb_url):
    """Restarting forever hides a writer that cannot live (a bad database, a bug): after
    CRASH_LOOP_RESTARTS deaths within the window, /healthz and /readyz answer 503 naming it,
    so the orchestrator restarts the replica and another takes its shards."""
    from ingestion_pipelines.sidecar.health import HealthServer
    from ingestion_pipelines.sidecar.writer_process import CRASH_LOOP_RESTARTS

    with sidecar_thread(mariadb_url, ["binance_trades"], writer_process=True) as sidecar:
        assert binance.wait_subscribed("BTCUSDT", 1, 15)
        writer = sidecar.writers[mariadb_url]
        health = HealthServer(sidecar, "127.0.0.1", 0)
        try:
            assert health.respond("/healthz")[0] == 200
            for death in range(CRASH_LOOP_RESTARTS):
                pid = writer.child_pid
                if death < CRASH_LOOP_RESTARTS - 1:
                    assert writer.crash_loop() is None
                os.kill(pid, signal.SIGKILL)
                wait_until(lambda pid=pid: writer.child_pid not in (None, pid), 30, "a restart")
            status, _, body = health.respond("/healthz")
            assert status == 503 and f"died {CRASH_LOOP_RESTARTS} times" in body
            assert "exit code -9" in body
            status, _, body = health.respond("/readyz")
            assert status == 503 and "writer process died" in json.loads(body)["checks"]["writer"]
            assert (
                f"ingest_sidecar_writer_restarts_total {CRASH_LOOP_RESTARTS}"
                in health.respond("/metrics")[2]
            )
        finally:
            health._server.server_close()
