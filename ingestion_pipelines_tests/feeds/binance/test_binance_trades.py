"""Parsing Binance frames: exact decimals, the taker's side, control events, bad frames."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from ingestion_pipelines.feeds.binance.feed import BinanceTrades, BinanceTradesSettings
from ingestion_pipelines.feeds.binance.replay import Trade
from ingestion_pipelines.feeds.protocol import ParseError

NOW = datetime(2026, 4, 14, tzinfo=UTC)


def test_trade_event_exact_and_taker_side():
    trade = Trade("BTCUSDT", 1001, "43210.12000000", "0.51234000", "0", 1776148327431, True)
    raw = orjson.dumps({"stream": "btcusdt@trade", "data": trade.event(1776148327433)})
    (row,) = BinanceTrades.parse(raw, NOW).rows["trade_tick"]
    assert row["price"] == Decimal("43210.12000000") and str(row["quantity"]) == "0.51234000"
    assert row["side"] == "sell"  # m=true: the buyer was the maker, the taker sold
    assert row["traded_at"] == datetime.fromtimestamp(1776148327.431, UTC)
    buy = Trade("BTCUSDT", 1002, "1", "2", "2", 1776148327431, False).event(0)
    assert BinanceTrades.parse(orjson.dumps(buy), NOW).rows["trade_tick"][0]["side"] == "buy"


def test_control_frames_and_bad_frames():
    assert BinanceTrades.parse(b'{"e":"serverShutdown","E":1}', NOW).reconnect == "serverShutdown"
    assert not BinanceTrades.parse(b'{"result":null,"id":1}', NOW).rows
    for bad in (
        b"{not json",
        b'{"e":"trade"}',
        b'{"e":"trade","s":"X","t":"1","p":"1","q":"1","T":1,"m":true}',
        b"\xff",
    ):
        with pytest.raises(ParseError):
            BinanceTrades.parse(bad, NOW)


def test_urls_from_settings():
    settings = BinanceTradesSettings(
        base_url="ws://h:1", rest_base_url="http://h:1", symbols=["btcusdt", "ethusdt"]
    )
    assert BinanceTrades.url(settings) == "ws://h:1/stream?streams=btcusdt@trade/ethusdt@trade"
    assert BinanceTrades.history_request(settings, "btcusdt", 5, 1000) == (
        "http://h:1/api/v3/historicalTrades?symbol=BTCUSDT&fromId=5&limit=1000"
    )
