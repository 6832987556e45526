"""The local order book: Binance's procedure against a naively rebuilt reference book, on the
recorded session and on random diff streams with gaps, stale events, duplicates and reconnects."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from ingestion_pipelines.feeds.binance import depth
from ingestion_pipelines.feeds.binance.depth import (
    DepthEvent,
    DepthSnapshot,
    LocalOrderBook,
    parse_depth_event,
    parse_depth_snapshot,
)
from ingestion_pipelines.feeds.protocol import ParseError

DATA = Path(depth.__file__).parent / "data"
AT = datetime(2026, 12, 6, tzinfo=UTC)


def _recorded():
    frames = [
        orjson.loads(line) for line in (DATA / "binance-depth-session-2021-10-12.jsonl").open()
    ]
    events = [(f["t"], parse_depth_event(f["raw"])) for f in frames if f["dir"] == "in"]
    snapshots = {}
    for line in (DATA / "binance-depth-snapshots-2021-10-12.jsonl").open():
        entry = orjson.loads(line)
        symbol = entry["url"].split("symbol=")[1].split("&")[0]
        snapshots[symbol] = (entry["t"], parse_depth_snapshot(symbol, entry["raw"]))
    return events, snapshots


def _naive(snapshot: DepthSnapshot, events: list[DepthEvent]):
    """The book rebuilt the plain way: the snapshot, then every event after it, in order."""
    bids = {p: q for p, q in snapshot.bids}
    asks = {p: q for p, q in snapshot.asks}
    for event in events:
        if event.final_update_id <= snapshot.last_update_id:
            continue
        for side, levels in ((bids, event.bids), (asks, event.asks)):
            for price, quantity in levels:
                side[price] = quantity
    return {p: q for p, q in bids.items() if q}, {p: q for p, q in asks.items() if q}


@pytest.mark.parametrize("symbol", ["NKNUSDT", "LRCBTC", "BLZETH", "RUNEEUR"])
def test_recorded_session_syncs_and_matches_the_naive_book(symbol):
    events, snapshots = _recorded()
    snapshot_t, snapshot = snapshots[symbol]
    mine = [(t, e) for t, e in events if e.symbol == symbol]
    book = LocalOrderBook(symbol)
    for _t, event in (te for te in mine if te[0] <= snapshot_t):
        assert book.on_event(event, AT) is None and book.needs_snapshot
    assert book.on_snapshot(snapshot, AT) is None
    for _t, event in (te for te in mine if te[0] > snapshot_t):
        assert book.on_event(event, AT) is None  # the live stream is gap-free
    assert book.last_update_id == mine[-1][1].final_update_id
    assert book.stale_events >= 1  # every recorded stream opens with events the snapshot covers
    bids, asks = _naive(snapshot, [e for _t, e in mine])
    full = book.top(10_000, AT)
    assert dict(full.bids) == bids and dict(full.asks) == asks
    assert [p for p, _ in full.bids] == sorted(bids, reverse=True)
    assert [p for p, _ in full.asks] == sorted(asks)


def test_snapshot_rows_keep_the_wire_decimals():
    events, snapshots = _recorded()
    _t, snapshot = snapshots["NKNUSDT"]
    book = LocalOrderBook("NKNUSDT")
    book.on_snapshot(snapshot, AT)
    row = book.top(3, AT).as_row()
    assert row["last_update_id"] == 499869752 and row["symbol"] == "NKNUSDT"
    assert row["bids"][0] == ["0.35210000", "672.00000000"]  # the snapshot's first bid, verbatim
    assert row["asks"][0][0] < row["asks"][1][0]


def test_documented_examples_parse():
    examples = orjson.loads((DATA / "binance-depth-docs-examples.json").read_bytes())
    event = parse_depth_event(orjson.dumps(examples["depthUpdate"]))
    assert (event.first_update_id, event.final_update_id) == (157, 160)
    assert event.bids == ((Decimal("0.0024"), Decimal("10")),)
    snap = parse_depth_snapshot("bnbbtc", orjson.dumps(examples["depth"]))
    assert snap.last_update_id == 1027024 and snap.symbol == "BNBBTC"


@pytest.mark.parametrize(
    "bad",
    [
        b"{not json",
        b'{"e":"trade"}',
        b'{"e":"depthUpdate","E":1,"s":"X","U":5,"u":4,"b":[],"a":[]}',
        b'{"e":"depthUpdate","E":1,"s":"X","U":"1","u":2,"b":[],"a":[]}',
        b'{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["NaN","1"]],"a":[]}',
        b'{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1","-1"]],"a":[]}',
        b'{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1e400","1"]],"a":[]}',
        b'{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[[1.5,"1"]],"a":[]}',
        b'{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[["1"]],"a":[]}',
        b'{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"a":[]}',
    ],
)
def test_hostile_events_are_refused_with_a_reason(bad):
    with pytest.raises(ParseError) as info:
        parse_depth_event(bad)
    assert str(info.value)


def test_error_bodies_are_not_snapshots():
    with pytest.raises(ParseError, match="no lastUpdateId"):
        parse_depth_snapshot("BTCUSDT", b'{"code":-1121,"msg":"Invalid symbol."}')


def test_snapshot_url_and_limits():
    url = depth.snapshot_url("https://api.binance.com/", "btcusdt", 5000)
    assert url == "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=5000"
    with pytest.raises(ValueError):
        depth.snapshot_url("https://api.binance.com", "btcusdt", 6000)


def _event(first, last, bids=(), asks=()):
    return DepthEvent("BTCUSDT", first, last, 0, tuple(bids), tuple(asks))


def test_memory_is_bounded():
    book = LocalOrderBook("BTCUSDT", max_buffer=3, max_levels=2)
    for i in range(1, 11):
        book.on_event(_event(i, i), AT)
    assert book.buffered == 3  # the oldest went first
    # a snapshot older than what is left is refused and a new one asked for
    resync = book.on_snapshot(DepthSnapshot("BTCUSDT", 5, (), ()), AT)
    assert resync is not None and resync.reason == "snapshot_too_old"
    assert (resync.from_update_id, resync.to_update_id) == (5, 8) and book.needs_snapshot
    levels = tuple((Decimal(p), Decimal(1)) for p in ("1", "2", "3", "4"))
    assert book.on_snapshot(DepthSnapshot("BTCUSDT", 9, levels, levels), AT) is None
    top = book.top(10, AT)
    assert [p for p, _ in top.bids] == [Decimal(4), Decimal(3)]  # the far levels were dropped
    assert [p for p, _ in top.asks] == [Decimal(1), Decimal(2)]
    assert top.last_update_id == 10


# ---- the property test: random diff streams against a naively rebuilt reference book ----


@dataclass
class History:
    """The true book: one level change per update id, grouped into events."""

    states: list[tuple[dict, dict]]  # states[k]: the book after update id k
    events: list[DepthEvent]


def _history(rng: random.Random, updates: int) -> History:
    bids = {Decimal(100 - i): Decimal(rng.randint(1, 9)) for i in range(5)}
    asks = {Decimal(101 + i): Decimal(rng.randint(1, 9)) for i in range(5)}
    states = [(dict(bids), dict(asks))]
    changes = []
    for _ in range(updates):
        is_bid = rng.random() < 0.5
        price = Decimal(rng.randint(80, 100) if is_bid else rng.randint(101, 121))
        quantity = Decimal(0) if rng.random() < 0.3 else Decimal(rng.randint(1, 999)) / 100
        side = bids if is_bid else asks
        if quantity:
            side[price] = quantity
        else:
            side.pop(price, None)
        changes.append((is_bid, price, quantity))
        states.append((dict(bids), dict(asks)))
    events, start = [], 1
    while start <= updates:
        end = min(updates, start + rng.randint(0, 3))
        last: dict = {}
        for is_bid, price, quantity in changes[start - 1 : end]:
            last[(is_bid, price)] = quantity  # an event carries each level's final quantity
        events.append(
            _event(
                start,
                end,
                [(p, q) for (b, p), q in last.items() if b],
                [(p, q) for (b, p), q in last.items() if not b],
            )
        )
        start = end + 1
    return History(states, events)


def _reference_top(history: History, update_id: int, n: int):
    bids, asks = history.states[update_id]
    return tuple(heapq.nlargest(n, bids.items())), tuple(heapq.nsmallest(n, asks.items()))


def _snapshot(history: History, update_id: int) -> DepthSnapshot:
    bids, asks = history.states[update_id]
    return DepthSnapshot("BTCUSDT", update_id, tuple(bids.items()), tuple(asks.items()))


@dataclass
class Tally:
    gaps: int = 0  # events lost while the book was synced
    gaps_reported: int = (
        0  # ...and then reported by a resync (the others were re-sent or reconnected)
    )
    resyncs: dict | None = None
    snapshots_checked: int = 0
    stale: int = 0


def _check(book: LocalOrderBook, history: History, tally: Tally) -> None:
    if book.synced:
        taken = book.top(5, AT)
        assert (taken.bids, taken.asks) == _reference_top(history, taken.last_update_id, 5)
        full = book.top(1000, AT)
        assert (full.bids, full.asks) == _reference_top(history, full.last_update_id, 1000)
        tally.snapshots_checked += 1


def _record(tally: Tally, resync) -> None:
    if resync is not None:
        tally.resyncs[resync.reason] = tally.resyncs.get(resync.reason, 0) + 1


def _deliver(book, history, tally, event, pending_gap) -> bool:
    """Deliver one event; a gap left by a dropped event must be reported now. Returns whether
    a gap is still pending."""
    before = book.last_update_id
    resync = book.on_event(event, AT)
    _record(tally, resync)
    if pending_gap and before is not None and event.first_update_id == before + 1:
        pending_gap = False  # the lost event itself, re-sent late: no gap any more
    elif pending_gap and before is not None and event.final_update_id > before:
        assert resync is not None and resync.reason == "gap", "a gap was not followed by a resync"
        assert (resync.from_update_id, resync.to_update_id) == (before, event.first_update_id)
        tally.gaps_reported += 1
        return False
    if resync is None and before is not None and event.final_update_id <= before:
        tally.stale += 1
    _check(book, history, tally)
    return pending_gap and book.synced


def _maybe_snapshot(rng, book, history, tally, latest: int) -> None:
    if not book.needs_snapshot or rng.random() < 0.3:
        return
    roll = rng.random()
    if roll < 0.15:
        snap_id = max(0, latest - rng.randint(5, 15))  # older than the buffer, maybe
    elif roll < 0.3:
        snap_id = min(len(history.states) - 1, latest + rng.randint(1, 6))  # ahead of the stream
    else:
        snap_id = latest
    resync = book.on_snapshot(_snapshot(history, snap_id), AT)
    _record(tally, resync)
    if resync is not None and resync.reason == "snapshot_too_old":
        assert book.needs_snapshot
    _check(book, history, tally)


def _run(seed: int, tally: Tally) -> None:
    rng = random.Random(seed)
    history = _history(rng, 400)
    book = LocalOrderBook("BTCUSDT", max_buffer=40)
    pending_gap = False
    for index, event in enumerate(history.events):
        roll = rng.random()
        if roll < 0.05:
            if book.synced and event.final_update_id > book.last_update_id:
                pending_gap, tally.gaps = True, tally.gaps + 1
            continue  # lost on the wire
        if roll < 0.08:
            resync = book.on_disconnect(AT)
            assert resync.reason == "reconnect" and book.needs_snapshot
            _record(tally, resync)
            pending_gap = False
        pending_gap = _deliver(book, history, tally, event, pending_gap)
        if roll < 0.14:
            pending_gap = _deliver(book, history, tally, event, pending_gap)  # duplicate
        if roll > 0.9 and index >= 3:
            old = history.events[index - rng.randint(1, 3)]
            pending_gap = _deliver(book, history, tally, old, pending_gap)  # stale
        _maybe_snapshot(rng, book, history, tally, event.final_update_id)


def test_random_streams_match_the_reference_book_and_every_gap_resyncs():
    tally = Tally(resyncs={})
    for seed in range(40):
        _run(seed, tally)
    # the generator did exercise every path (else this test would prove nothing)
    assert tally.gaps_reported > 200 and tally.resyncs.get("gap", 0) >= tally.gaps_reported
    assert tally.resyncs.get("reconnect", 0) > 20
    assert tally.resyncs.get("snapshot_too_old", 0) > 0
    assert tally.stale > 20 and tally.snapshots_checked > 5000


def test_a_gap_while_replaying_the_buffer_keeps_the_events_after_it():
    book = LocalOrderBook("BTCUSDT")
    one = (Decimal(1), Decimal(1))
    for first, last in ((1, 2), (3, 4), (7, 8), (9, 10)):
        book.on_event(_event(first, last, bids=[(Decimal(first), Decimal(last))]), AT)
    resync = book.on_snapshot(DepthSnapshot("BTCUSDT", 2, (one,), ()), AT)
    assert resync is not None and (resync.reason, resync.from_update_id, resync.to_update_id) == (
        "gap",
        4,
        7,
    )
    assert book.buffered == 2  # 7..8 and 9..10 wait for the next snapshot
    assert book.on_snapshot(DepthSnapshot("BTCUSDT", 6, (one,), ()), AT) is None
    assert book.last_update_id == 10
    assert book.top(5, AT).bids == ((Decimal(9), Decimal(10)), (Decimal(7), Decimal(8)), one)
