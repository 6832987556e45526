"""The local Binance exchange (`BinanceServer`): `server.py` runs it, `market.py` is its trades
and journal, `stream.py` the websocket protocol, `rest.py` the REST endpoints."""

from ingestion_pipelines.feeds.binance.replay.market import BenchmarkRun, Trade, trade_stream
from ingestion_pipelines.feeds.binance.replay.server import BinanceServer

__all__ = ["BenchmarkRun", "BinanceServer", "Trade", "trade_stream"]
