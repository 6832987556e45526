"""The books of one connection on the recorded session: snapshots asked once, no resync on a clean
stream, every book resynchronised after a disconnect, snapshot rows at the cadence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from ingestion_pipelines.feeds.binance import depth
from ingestion_pipelines.feeds.binance.depth_books import DepthBooks, stream_url
from ingestion_pipelines.feeds.protocol import ParseError

DATA = Path(depth.__file__).parent / "data"
SYMBOLS = ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _session():
    """The recorded frames and REST answers, merged in the order they were received."""
    inputs = []
    for line in (DATA / "binance-depth-session-2021-10-12.jsonl").open():
        frame = orjson.loads(line)
        if frame["dir"] == "in":
            inputs.append((frame["t"], "frame", frame["raw"]))
    for line in (DATA / "binance-depth-snapshots-2021-10-12.jsonl").open():
        entry = orjson.loads(line)
        symbol = entry["url"].split("symbol=")[1].split("&")[0]
        inputs.append((entry["t"], symbol, entry["raw"]))
    return sorted(inputs, key=lambda item: item[0])


def _replay(books: DepthBooks, inputs, *, stop_at: int | None = None):
    asked, resyncs, rows = [], [], []
    for t, kind, raw in inputs[:stop_at]:
        step = (
            books.on_frame(raw, _at(t)) if kind == "frame" else books.on_snapshot(kind, raw, _at(t))
        )
        asked += step.need_snapshot
        resyncs += step.resyncs
        rows += books.due_snapshots(_at(t))
    return asked, resyncs, rows


def test_recorded_session_asks_each_snapshot_once_and_never_resyncs():
    books = DepthBooks(SYMBOLS, depth=5, snapshot_ms=1000)
    asked, resyncs, rows = _replay(books, _session())
    assert sorted(asked) == sorted(SYMBOLS)  # each asked once, after its first buffered event
    assert resyncs == []
    assert all(book.synced for book in books.books.values())
    nkn = [r for r in rows if r.symbol == "NKNUSDT"]
    assert len(nkn) >= 20  # ~30 s of a busy book, one row a second
    gaps = [(b.at - a.at) for a, b in zip(nkn, nkn[1:], strict=False)]
    assert min(gaps) >= timedelta(seconds=1)
    assert all(len(r.bids) == 5 and len(r.asks) == 5 for r in nkn)
    assert [r.last_update_id for r in nkn] == sorted({r.last_update_id for r in nkn})


def test_a_disconnect_resyncs_every_book_and_asks_again():
    inputs = _session()
    books = DepthBooks(SYMBOLS)
    _replay(books, inputs, stop_at=len(inputs) // 2)
    step = books.on_disconnect(_at(inputs[len(inputs) // 2][0]))
    assert sorted(r.symbol for r in step.resyncs) == sorted(SYMBOLS)
    assert {r.reason for r in step.resyncs} == {"reconnect"}
    assert not books.due_snapshots(_at(inputs[-1][0]))  # no book to write until resynced
    frames = [i for i in inputs[len(inputs) // 2 :] if i[1] == "frame"]
    asked, _resyncs, _rows = _replay(books, frames)
    assert "NKNUSDT" in asked and len(asked) == len(set(asked))


def test_a_late_snapshot_is_ignored_and_foreign_symbols_refused():
    inputs = _session()
    books = DepthBooks(SYMBOLS)
    _replay(books, inputs)
    nkn = books.books["NKNUSDT"]
    before = nkn.last_update_id
    old = next(raw for _t, kind, raw in inputs if kind == "NKNUSDT")
    assert books.on_snapshot("NKNUSDT", old, _at(0)).resyncs == []
    assert nkn.last_update_id == before  # the book did not go back in time
    foreign = b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":[]}'
    with pytest.raises(ParseError, match="not subscribed"):
        books.on_frame(foreign, _at(0))


def test_stream_url_and_its_cap():
    assert stream_url("wss://stream.binance.com:9443/", ["BTCUSDT", "ethusdt"]) == (
        "wss://stream.binance.com:9443/stream?streams=btcusdt@depth@100ms/ethusdt@depth@100ms"
    )
    with pytest.raises(ValueError, match="1024"):
        stream_url("wss://x", [f"S{i}USDT" for i in range(1025)])
