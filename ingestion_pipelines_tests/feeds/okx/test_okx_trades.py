"""OKX trades: recorded frames, the documented shapes, hostile frames, subscription limits and
the REST history used to fill gaps."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from ingestion_pipelines.config.workers import MAX_SYMBOLS
from ingestion_pipelines.feeds.okx import feed
from ingestion_pipelines.feeds.okx.feed import OkxTradesProtocol, OkxTradesSettings
from ingestion_pipelines.feeds.protocol import ParseError

DATA = Path(feed.__file__).parent / "data"
NOW = datetime(2026, 12, 6, tzinfo=UTC)


def _frames(name):
    return [orjson.loads(line) for line in (DATA / name).open()]


def test_recorded_session_gives_one_row_per_trade_id_in_sequence():
    rows = []
    for frame in _frames("okx-trades-session-2022-05-13.jsonl"):
        if frame["dir"] == "in":
            parsed = OkxTradesProtocol.parse(frame["raw"].encode(), NOW)
            rows.extend(parsed.rows.get("trade_tick", []))
    btc = [r for r in rows if r["symbol"] == "BTC-USDT"]
    assert len(btc) == 69
    ids = [r["trade_id"] for r in btc]
    assert ids == list(
        range(338476307, 338476307 + 69)
    )  # consecutive: what the gap check relies on
    first = btc[0]
    assert first["price"] == Decimal("30236") and str(first["quantity"]) == "0.0002"
    assert first["side"] == "buy" and first["source"] == "okx"
    assert first["traded_at"] == datetime.fromtimestamp(1652459224.818, UTC)
    assert {r["side"] for r in btc} == {"buy", "sell"}


def test_trades_all_frames_and_documented_replies():
    frames = {f["id"]: f["raw"].encode() for f in _frames("okx-trades-all-frames.jsonl")}
    (row,) = OkxTradesProtocol.parse(frames["fitfi-swap-2023-12-01"], NOW).rows["trade_tick"]
    assert (row["symbol"], row["trade_id"], str(row["price"])) == (
        "FITFI-USDT-SWAP",
        38380467,
        "0.007173",
    )
    assert row["extra"] is None
    (doc,) = OkxTradesProtocol.parse(frames["docs-trades-all-push"], NOW).rows["trade_tick"]
    assert doc["extra"] == {"source": "0"}  # an unmapped field is kept, not lost
    assert not OkxTradesProtocol.parse(frames["docs-subscribe-ack"], NOW).rows
    with pytest.raises(ParseError, match="60012"):
        OkxTradesProtocol.parse(frames["docs-error"], NOW)
    with pytest.raises(ParseError, match="aggregated"):
        OkxTradesProtocol.parse(frames["docs-trades-aggregated-push"], NOW)
    assert not OkxTradesProtocol.parse(b"pong", NOW).rows
    notice = (
        b'{"event":"notice","code":"64008","msg":"The connection will soon be closed","connId":"a"}'
    )
    assert "64008" in OkxTradesProtocol.parse(notice, NOW).reconnect


def _push(**fields):
    trade = {"instId": "BTC-USDT", "tradeId": "1", "px": "1", "sz": "1", "side": "buy", "ts": "1"}
    trade.update(fields)
    trade = {k: v for k, v in trade.items() if v is not None}
    return orjson.dumps({"arg": {"channel": "trades-all", "instId": "BTC-USDT"}, "data": [trade]})


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (_push(px="NaN"), "not a finite number"),
        (_push(px="-1"), "must be positive"),
        (_push(sz="1e400"), "out of range"),
        (_push(px="abc"), "not a decimal"),
        (_push(px=1.5), "float"),
        (_push(side="long"), "side must be"),
        (_push(tradeId="12a"), "tradeId"),
        (_push(tradeId="1" * 30), "tradeId"),
        (_push(ts=None), "ts must be"),
        (_push(instId=None), "no instId"),
        (b'{"arg":{"channel":"trades-all"},"data":[]}', "without a data list"),
        (b'{"arg":{"channel":"books"},"data":[{}]}', "not a trades push"),
        (b"[1,2]", "not an object"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_hostile_frames_are_refused_with_a_reason(frame, reason):
    with pytest.raises(ParseError, match=reason) as info:
        OkxTradesProtocol.parse(frame, NOW)
    if b'"data":[{"instId"' in frame or b'"data":[{"tradeId"' in frame:
        assert info.value.record_key["source"] == "okx"


def test_subscription_covers_every_symbol_within_the_limits():
    symbols = [f"C{i}-USDT" for i in range(MAX_SYMBOLS)]
    settings = OkxTradesSettings(symbols=symbols)
    messages = OkxTradesProtocol.subscribe_messages(settings)
    assert len(messages) <= feed.MAX_SUBSCRIBE_REQUESTS
    sent = [arg for m in messages for arg in orjson.loads(m)["args"]]
    assert sent == [{"channel": "trades-all", "instId": s} for s in symbols]
    assert all(len(m) <= feed.MAX_ARGS_BYTES for m in messages)
    assert OkxTradesProtocol.url(settings) == "wss://ws.okx.com:8443/ws/v5/business"
    with pytest.raises(ValueError):
        OkxTradesSettings(symbols=["btc usdt"])


def test_history_request_and_rows_fill_a_gap_oldest_first():
    settings = OkxTradesSettings()
    url = OkxTradesProtocol.history_request(settings, "BTC-USDT", 242720719, 1000)
    query = parse_qs(urlsplit(url).query)
    assert urlsplit(url).path == "/api/v5/market/history-trades"
    assert query == {
        "instId": ["BTC-USDT"],
        "type": ["1"],
        "after": ["242720819"],
        "limit": ["100"],
    }
    payload = (DATA / "okx-history-trades-example.json").read_bytes()
    rows = OkxTradesProtocol.history_rows("BTC-USDT", payload, NOW)
    assert [r["trade_id"] for r in rows] == [242720719, 242720720]
    with pytest.raises(ParseError, match="failed"):
        OkxTradesProtocol.history_rows("BTC-USDT", b'{"code":"51001","msg":"x","data":[]}', NOW)


def test_a_long_subscription_is_split_under_64_kb():
    symbols = [f"LONGCOINNAME{i:05d}-USDT-SWAP" for i in range(2000)]  # beyond MAX_SYMBOLS
    settings = OkxTradesSettings.model_construct(symbols=symbols)
    messages = OkxTradesProtocol.subscribe_messages(settings)
    assert len(messages) > 1 and all(len(m) <= feed.MAX_ARGS_BYTES for m in messages)
    sent = [arg["instId"] for m in messages for arg in orjson.loads(m)["args"]]
    assert sent == symbols
