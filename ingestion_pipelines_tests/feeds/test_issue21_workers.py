"""The issue-21 protocols are registered as workers (`okx_trades`, `bybit_trades`,
`binance_depth`) with the table policies the sidecar reads."""

from __future__ import annotations

from ingestion_pipelines.config.workers import catalogue
from ingestion_pipelines.feeds.base import feed_classes
from ingestion_pipelines.feeds.binance.depth_feed import BinanceDepth
from ingestion_pipelines.feeds.bybit.feed import BybitTrades, BybitTradesProtocol
from ingestion_pipelines.feeds.okx.feed import OkxTrades, OkxTradesProtocol
from ingestion_pipelines.storage.table_policy import BOOK_RESYNCS, BOOK_SNAPSHOTS, TRADES


def test_protocols_are_workers():
    ids = set(catalogue())
    assert {"okx_trades", "bybit_trades", "binance_depth", "binance_trades"} <= ids
    classes = feed_classes()
    assert classes["okx_trades"] is OkxTrades and classes["bybit_trades"] is BybitTrades
    assert classes["binance_depth"] is BinanceDepth
    assert OkxTradesProtocol not in classes.values()  # the protocol alone is no worker
    assert BybitTradesProtocol not in classes.values()


def test_workers_declare_what_the_engine_reads():
    for feed in (OkxTrades, BybitTrades):
        assert feed.policies == (TRADES,) and feed.tables == ("trade_tick",)
        for name in ("url", "subscribe_messages", "parse", "source", "headers"):
            assert hasattr(feed, name), (feed.__name__, name)
        assert feed.keepalive_message and 0 < feed.keepalive_interval_s < 30
    assert OkxTrades.consecutive_ids and not BybitTrades.consecutive_ids
    assert callable(OkxTrades.history_request) and callable(OkxTrades.history_rows)
    assert BinanceDepth.policies == (BOOK_SNAPSHOTS, BOOK_RESYNCS)
    assert not any(p.gap_tracked for p in BinanceDepth.policies)
    assert callable(BinanceDepth.open_session)
