"""The engine reconnects ahead of the server's connection-age cut (Binance: 24 h; shortened
here), and the trades around each planned reconnect are all stored, once."""

from ingestion_pipelines.feeds.binance.feed import BinanceTrades
from ingestion_pipelines.feeds.binance.replay import BinanceServer
from ingestion_pipelines_tests.sidecar.helpers import (
    assert_exactly_once,
    count_trades,
    sidecar_thread,
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
            wait_until(
                lambda: _all_stored_or_trade_again(mariadb_url, server),
                30,
                "every journaled trade stored",
                poll=0.5,
            )
    assert_exactly_once(mariadb_url, server)


def _all_stored_or_trade_again(database_url: str, server) -> bool:
    """True once every journaled trade is stored; else one more trade, as a live market would
    send: trades journaled while a reconnect was under way are found missing by the next
    streamed trade's id, so a stream paused right after a reconnect would hide them forever."""
    journaled = sum(len(server.trades(s)) for s in server.symbols)
    if count_trades(database_url) >= journaled:
        return True
    server.generate(1)
    return False
