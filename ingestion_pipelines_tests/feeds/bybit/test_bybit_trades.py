"""Bybit Spot trades: captured frames, documented replies, hostile frames, subscription limits."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from ingestion_pipelines.config.workers import MAX_SYMBOLS
from ingestion_pipelines.feeds.bybit import feed
from ingestion_pipelines.feeds.bybit.feed import BybitTradesProtocol, BybitTradesSettings
from ingestion_pipelines.feeds.protocol import ParseError

DATA = Path(feed.__file__).parent / "data"
NOW = datetime(2026, 12, 6, tzinfo=UTC)
FRAMES = {
    f["id"]: f["raw"].encode()
    for f in (orjson.loads(line) for line in (DATA / "bybit-spot-trade-frames.jsonl").open())
}


def test_captured_spot_pushes():
    (buy,) = BybitTradesProtocol.parse(FRAMES["btcusdt-2025-10-27"], NOW).rows["trade_tick"]
    assert buy["trade_id"] == 2290000000923750370 and buy["symbol"] == "BTCUSDT"
    assert buy["price"] == Decimal("115440.7") and str(buy["quantity"]) == "0.00903"
    assert buy["side"] == "buy"  # S is the taker's side
    assert buy["traded_at"] == datetime.fromtimestamp(1761583474.343, UTC)
    assert buy["extra"] == {"seq": 89200463112, "BT": False, "RPI": False}
    (sell,) = BybitTradesProtocol.parse(FRAMES["btcusdt-2026-09-13"], NOW).rows["trade_tick"]
    assert sell["side"] == "sell" and sell["trade_id"] == 2100000000188691524


def test_replies_and_derivative_ids():
    assert not BybitTradesProtocol.parse(FRAMES["docs-subscribe-ack-spot"], NOW).rows
    assert not BybitTradesProtocol.parse(FRAMES["docs-pong-spot"], NOW).rows
    refused = b'{"success":false,"ret_msg":"Invalid symbol :[publicTrade.XXX]","op":"subscribe"}'
    with pytest.raises(ParseError, match="Invalid symbol"):
        BybitTradesProtocol.parse(refused, NOW)
    with pytest.raises(ParseError, match="decimal string"):  # a UUID id cannot key trade_tick
        BybitTradesProtocol.parse(FRAMES["docs-trade-linear-uuid"], NOW)


def test_every_trade_of_a_push_in_order():
    trades = [
        {
            "i": str(10 + n),
            "T": 1761583474343 + n,
            "p": "1.5",
            "v": "2",
            "S": "Sell",
            "s": "ETHUSDT",
        }
        for n in range(3)
    ]
    raw = orjson.dumps(
        {"topic": "publicTrade.ETHUSDT", "ts": 1, "type": "snapshot", "data": trades}
    )
    rows = BybitTradesProtocol.parse(raw, NOW).rows["trade_tick"]
    assert [r["trade_id"] for r in rows] == [10, 11, 12]


def _push(**fields):
    trade = {"i": "1", "T": 1, "p": "1", "v": "1", "S": "Buy", "s": "BTCUSDT"}
    trade.update(fields)
    trade = {k: v for k, v in trade.items() if v is not None}
    return orjson.dumps(
        {"topic": "publicTrade.BTCUSDT", "ts": 1, "type": "snapshot", "data": [trade]}
    )


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (_push(p="NaN"), "not a finite number"),
        (_push(p="Infinity"), "not a finite number"),
        (_push(v="0"), "must be positive"),
        (_push(p="9" * 30), "out of range"),
        (_push(p=1.5), "float"),
        (_push(S="buy"), "S must be"),
        (_push(i=None), "decimal string"),
        (_push(T="1"), "T must be"),
        (_push(T=10**15), "T must be"),
        (_push(T=-1), "T must be"),
        (
            b'{"topic":"publicTrade.BTCUSDT","data":[{"i":"1","T":100000000000000000000000,'
            b'"p":"1","v":"1","S":"Buy","s":"BTCUSDT"}]}',
            "not JSON|T must be",
        ),
        (_push(s=""), "no symbol"),
        (b'{"topic":"publicTrade.BTCUSDT","data":{}}', "without a data list"),
        (b'{"topic":"orderbook.1.BTCUSDT","data":[]}', "not a publicTrade push"),
        (b'"text"', "not an object"),
        (b"{", "not JSON"),
    ],
)
def test_hostile_frames_are_refused_with_a_reason(frame, reason):
    with pytest.raises(ParseError, match=reason):
        BybitTradesProtocol.parse(frame, NOW)


def test_subscriptions_respect_ten_args_a_request():
    symbols = [f"COIN{i}USDT" for i in range(MAX_SYMBOLS)]
    settings = BybitTradesSettings(symbols=symbols)
    messages = [orjson.loads(m) for m in BybitTradesProtocol.subscribe_messages(settings)]
    assert all(m["op"] == "subscribe" and 1 <= len(m["args"]) <= 10 for m in messages)
    assert [a for m in messages for a in m["args"]] == [f"publicTrade.{s}" for s in symbols]
    assert sum(len(a) for m in messages for a in m["args"]) <= feed.MAX_ARGS_CHARS
    assert BybitTradesProtocol.url(settings) == "wss://stream.bybit.com/v5/public/spot"
    assert orjson.loads(BybitTradesProtocol.keepalive_message) == {"op": "ping"}
