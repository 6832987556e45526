"""The engine reconnects ahead of the server's connection-age cut (Binance: 24 h; shortened
here), and the trades around each planned reconnect are all stored, once."""

from ingestion_pipelines.feeds.binance.feed import BinanceTrades
from ingestion_pipelines.feeds.binance.replay import BinanceServer
from ingestion_pipelines_tests.sidecar.helpers import (
    assert_exactly_once,
    sidecar_thread,
    wait_all_stored,
    wait_until,
)


def test_planned_reconnects_before_the_age_cut_lose_nothing(mariadb_url, monkeypatch):
    monkeypatch.setattr(BinanceTrades, "max_connection_age_s", 1.0)
    with BinanceServer(
        symbols=("BTCUSDT",), rate=50.0, paused=True, max_connection_age_s=30
    ) as server:
        monkeypatch.setenv("INGEST_BINANCE_TRADES__BASE_URL", server.url)
        monkeypatch.setenv("INGEST_BINANCE_TRADES__REST_BASE_URL", server.rest_url)
        monkeypatch.setenv("INGEST_BINANCE_TRADES__SYMBOLS", "btcusdt")
        with sidecar_thread(mariadb_url, ["binance_trades"]):
            server.wait_connections(1, 15)
            server.resume()
            wait_until(lambda: server.total_connections >= 4, 20, "three planned reconnects")
            server.pause()
            wait_all_stored(mariadb_url, server)
    assert_exactly_once(mariadb_url, server)
