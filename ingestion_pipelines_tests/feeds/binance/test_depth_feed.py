"""`binance_depth`'s session on the recorded session: what it asks the sidecar to fetch, the rows
it gives, and what it says about control frames, failures and disconnections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from ingestion_pipelines.feeds.binance.depth_feed import BinanceDepth, BinanceDepthSettings
from ingestion_pipelines.feeds.protocol import ParseError

DATA = Path(__file__).parents[3] / "ingestion_pipelines" / "feeds" / "binance" / "data"
SYMBOLS = ["nknusdt", "blzeth", "lrcbtc", "runeeur"]
AT = datetime(2021, 10, 12, 0, 28, 40, tzinfo=UTC)


def _frames() -> list[str]:
    lines = (DATA / "binance-depth-session-2021-10-12.jsonl").read_text().splitlines()
    return [r["raw"] for r in map(orjson.loads, lines) if r.get("dir") == "in"]


def _snapshots() -> dict[str, str]:
    lines = (DATA / "binance-depth-snapshots-2021-10-12.jsonl").read_text().splitlines()
    out = {}
    for record in map(orjson.loads, lines):
        symbol = record["url"].split("symbol=")[1].split("&")[0]
        out[symbol] = record["raw"]
    return out


def _session(**settings):
    return BinanceDepth.open_session(
        BinanceDepthSettings(symbols=SYMBOLS, rest_base_url="http://rest.test", **settings)
    )


def test_recorded_session_syncs_every_book_and_stores_them():
    session = _session(snapshot_ms=100, depth=5)
    snapshots = _snapshots()
    frames = _frames()
    asked = []
    for raw in frames:  # each snapshot answered as soon as asked (they fit the recording)
        assert session.parse(raw, AT).rows == {}  # no gap in the recording
        for symbol, url in session.requests():
            assert url == f"http://rest.test/api/v3/depth?symbol={symbol}&limit=1000"
            asked.append(symbol)
            assert session.on_response(symbol, snapshots[symbol].encode(), AT).rows == {}
    assert sorted(asked) == sorted(s.upper() for s in SYMBOLS)  # once each
    rows = session.tick(AT + timedelta(seconds=1)).rows["order_book_snapshot"]
    assert sorted(r["symbol"] for r in rows) == sorted(s.upper() for s in SYMBOLS)
    assert all(len(r["bids"]) == 5 and len(r["asks"]) <= 5 for r in rows)
    assert session.tick(AT + timedelta(seconds=1)).rows == {}  # nothing moved since
    stats = session.stats()
    assert stats["books_synced"] == 4 and stats["resyncs"] == 0
    assert stats["book_events_applied"] > 100 and stats["book_events_stale"] >= 3
    assert stats["book_arrival_to_applied_ms_p99"] is not None


def test_disconnect_resyncs_every_book_and_failures_are_asked_again():
    session = _session()
    frames = _frames()
    session.parse(frames[0], AT)
    (symbol, _url), *_ = session.requests()
    session.request_failed(symbol)
    session.parse(frames[0], AT)  # the next event of that book asks again
    assert symbol in [s for s, _u in session.requests()]
    rows = session.on_disconnect(AT).rows["order_book_resync"]
    assert {r["reason"] for r in rows} == {"reconnect"} and len(rows) == 4
    assert session.stats()["resyncs_by_reason"] == {"reconnect": 4}
    assert session.stats()["latest_resyncs"][-1]["at"] == AT.isoformat()


def test_control_frames_and_bad_frames():
    session = _session()
    assert session.parse('{"result":null,"id":1}', AT).rows == {}
    assert session.parse('{"e":"serverShutdown","E":1}', AT).reconnect == "serverShutdown"
    assert BinanceDepth.parse(b'{"e":"serverShutdown","E":1}', AT).reconnect
    with pytest.raises(ParseError):
        session.parse("{not json", AT)
    with pytest.raises(ParseError):  # a symbol this connection did not subscribe to
        session.parse(
            '{"stream":"x@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT",'
            '"U":1,"u":2,"b":[],"a":[]}}',
            AT,
        )
    with pytest.raises(ParseError):  # an error body instead of a snapshot
        session.on_response("NKNUSDT", b'{"code":-1121,"msg":"Invalid symbol."}', AT)


def test_settings_refuse_undocumented_snapshot_limits():
    with pytest.raises(ValueError):
        BinanceDepthSettings(snapshot_limit=300)
    assert BinanceDepthSettings().snapshot_ms == 1000
    url = BinanceDepth.url(BinanceDepthSettings(symbols=["btcusdt"]))
    assert url == "wss://stream.binance.com:9443/stream?streams=btcusdt@depth@100ms"
