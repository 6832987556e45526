"""A sidecar killed after receiving a symbol's first trades but before committing any of them
resumes from the first trade it had seen, not from what the stream sends after the restart."""

import orjson

from ingestion_pipelines.core.settings import local_data_dir
from ingestion_pipelines.feeds.binance.replay import BinanceServer
from ingestion_pipelines.sidecar.gaps import FirstSeen
from ingestion_pipelines_tests.sidecar.helpers import (
    assert_exactly_once,
    sidecar_thread,
    wait_all_stored,
    wait_until,
)


def test_first_seen_is_durable_and_written_once(tmp_path):
    path = tmp_path / "binance_trades.first_seen.json"
    seen = FirstSeen(path)
    seen.record("BTCUSDT", 17)
    seen.record("BTCUSDT", 18)  # only the first one counts
    assert orjson.loads(path.read_bytes()) == {"BTCUSDT": 17}
    assert FirstSeen(path).ids == {"BTCUSDT": 17}


def test_trades_seen_before_a_kill_and_never_committed_are_filled(mariadb_url, monkeypatch):
    with BinanceServer(symbols=("BTCUSDT",), rate=0) as server:
        server.generate(40)  # trades 1..40 went by while the killed sidecar held them uncommitted
        # what the killed sidecar had written before its first commit:
        FirstSeen(local_data_dir() / "spool" / "binance_trades.first_seen.json").record(
            "BTCUSDT", 1
        )
        monkeypatch.setenv("INGEST_BINANCE_TRADES__BASE_URL", server.url)
        monkeypatch.setenv("INGEST_BINANCE_TRADES__REST_BASE_URL", server.rest_url)
        monkeypatch.setenv("INGEST_BINANCE_TRADES__SYMBOLS", "btcusdt")
        with sidecar_thread(mariadb_url, ["binance_trades"]):
            server.wait_connections(1, 15)
            server.generate(10)  # the restarted stream begins at 41: trades 1..40 are a gap
            wait_until(lambda: len(server.trades("BTCUSDT")) == 50, 5, "trades generated")
            wait_all_stored(mariadb_url, server)
    assert_exactly_once(mariadb_url, server)
