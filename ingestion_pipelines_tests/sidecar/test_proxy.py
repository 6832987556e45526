"""The `proxy` setting carries the websocket (CONNECT) and the REST gap fill, and its password
never reaches a log line."""

from loguru import logger

from ingestion_pipelines.feeds.binance.replay import BinanceServer
from ingestion_pipelines_tests.fakes.connect_proxy import ConnectProxy
from ingestion_pipelines_tests.sidecar.helpers import (
    assert_exactly_once,
    sidecar_thread,
    wait_all_stored,
    wait_until,
)


def test_stream_and_gap_fill_go_through_the_proxy(mariadb_url, monkeypatch):
    proxy = ConnectProxy("crawler", "pr0xy-secret")
    lines = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{message}")
    try:
        with BinanceServer(symbols=("BTCUSDT",), rate=0) as server:
            monkeypatch.setenv("INGEST_BINANCE_TRADES__BASE_URL", server.url)
            monkeypatch.setenv("INGEST_BINANCE_TRADES__REST_BASE_URL", server.rest_url)
            monkeypatch.setenv("INGEST_BINANCE_TRADES__SYMBOLS", "btcusdt")
            monkeypatch.setenv("INGEST_BINANCE_TRADES__PROXY", proxy.url("crawler", "pr0xy-secret"))
            with sidecar_thread(mariadb_url, ["binance_trades"]):
                server.wait_connections(1, 15)
                server.generate(5)
                server.skip_ids("BTCUSDT", 20)  # a gap: filled from REST, through the proxy
                server.generate(25)
                wait_until(lambda: len(server.trades("BTCUSDT")) == 30, 5, "trades generated")
                wait_all_stored(mariadb_url, server)
        assert_exactly_once(mariadb_url, server)
    finally:
        logger.remove(sink)
        proxy.close()
    assert proxy.tunnels == [f"127.0.0.1:{server.port}"]
    assert any("/api/v3/historicalTrades" in r for r in proxy.requests)
    assert proxy.refused == 0
    assert not [line for line in lines if "pr0xy-secret" in line]
