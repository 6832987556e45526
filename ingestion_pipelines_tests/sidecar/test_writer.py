"""The writer on a real MariaDB: a full spool holds batches (clear error, nothing dropped) and the
queue stays bounded; a row the database refuses goes to dead_letter and the rest is written."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, func, select

from ingestion_pipelines.sidecar.spool import Spool
from ingestion_pipelines.sidecar.writer import Writer
from ingestion_pipelines.storage.dead_letters import dead_letter_row
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import dead_letter, trade_tick
from ingestion_pipelines_tests.sidecar.helpers import trade_row, wait_until

_trade = trade_row


def _count(url, table) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(table)).scalar_one()
    finally:
        engine.dispose()


def test_full_spool_holds_batches_and_bounds_the_queue(mariadb_url, mariadb_server, tmp_path):
    ensure_schema(mariadb_url)
    writer = Writer(
        mariadb_url,
        spools=lambda feed: Spool(tmp_path / feed, max_bytes=20_000),
        batch_rows=50,
        capacity_rows=500,
        retry_s=0.2,
    ).start()
    try:
        mariadb_server.stop()
        accepted, refused = 0, 0
        for i in range(700):
            if writer.submit("binance_trades", "trade_tick", [_trade(i)], "ignore", wait_s=0.005):
                accepted += 1
            else:
                refused += 1
        assert refused > 0  # back-pressure instead of unbounded memory
        assert writer.pending_rows <= 500 + 50
        metrics = writer.metrics_for("binance_trades")
        wait_until(lambda: "is full" in (metrics.last_error or ""), 10, "the spool full")
        assert writer.spool("binance_trades").size() <= 20_000
        mariadb_server.start()
        assert writer.flush(30)
        wait_until(lambda: not writer.down, 10, "spool replayed")
        assert _count(mariadb_url, trade_tick) == accepted  # every accepted row, none dropped
    finally:
        mariadb_server.start()
        writer.stop()


def test_refused_row_goes_to_dead_letter(mariadb_url, tmp_path):
    ensure_schema(mariadb_url)
    writer = Writer(mariadb_url, spools=lambda feed: Spool(tmp_path / feed)).start()
    rows = [_trade(1), _trade(2, price="1e40"), _trade(3)]  # out of DECIMAL(38, 18) range
    assert writer.submit("binance_trades", "trade_tick", rows, "ignore")
    assert writer.flush(10)
    writer.stop()
    assert _count(mariadb_url, trade_tick) == 2
    assert _count(mariadb_url, dead_letter) == 1


def test_a_spool_replayed_twice_stores_each_dead_letter_once(mariadb_url, tmp_path):
    """A replay that committed and died before deleting its file replays it again; the dead
    letters in it (as well as those spooled before they had a fingerprint) stay single."""
    ensure_schema(mariadb_url)
    received_at = datetime.now(UTC)
    letter = dead_letter_row("binance_trades", "bad frame", b"{]", received_at=received_at)
    before_0008 = {k: v for k, v in letter.items() if k != "fingerprint"} | {"reason": "older"}
    trade = _trade(1)  # the same rows both times, as a spool file replayed twice holds
    writer = Writer(mariadb_url, spools=lambda feed: Spool(tmp_path / feed)).start()
    try:
        for _ in range(2):
            spool = writer.spool("binance_trades")
            spool.append("dead_letter", "ignore", [letter])
            spool.append("dead_letter", "insert", [before_0008])  # as such spools say
            spool.append("trade_tick", "ignore", [trade])
            assert writer.replay_spool("binance_trades") == 3
    finally:
        assert writer.stop()
    engine = create_engine(mariadb_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(select(dead_letter.c.reason, dead_letter.c.received_at)).all()
    finally:
        engine.dispose()
    assert sorted(stored) == [("bad frame", received_at), ("older", received_at)]
    assert _count(mariadb_url, trade_tick) == 1
