"""The local SSI iBoard server replays the recorded pushstream like the real one, via websocket-client."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket

from ingestion_pipelines.feeds.ssi.replay import (
    BROWSER_USER_AGENT,
    SsiRecording,
    SsiServer,
    recording_path,
    shift_frame,
)
from ingestion_pipelines.standins.feeds import serve_feeds
from ingestion_pipelines_tests.replay_ws.wsclient import WsReader

SHARED_RECORDING = Path("/work/shared/recordings/ssi-iboard-session-2026-04-14.jsonl")
BROWSER = {"User-Agent": BROWSER_USER_AGENT}
RECORDING = SsiRecording.load()


@pytest.fixture
def readers() -> Iterator[list[WsReader]]:
    opened: list[WsReader] = []
    yield opened
    for reader in opened:
        reader.close()


def connect(readers: list[WsReader], server: SsiServer, **kwargs) -> WsReader:
    reader = WsReader(server.realtime_url, header=kwargs.pop("header", BROWSER), **kwargs)
    readers.append(reader)
    return reader


def sub_message(symbols: list[str], kind: str = "sub") -> str:
    msg = json.loads(RECORDING.subscribe_message)
    msg["type"] = kind
    msg["variables"]["symbols"] = symbols
    return json.dumps(msg, separators=(",", ":"))


def frames_of(symbols: set[str]) -> list[str]:
    return [f.raw for f in RECORDING.frames if f.symbol in symbols]


def test_bundled_recording_is_the_shared_one_and_parses():
    if SHARED_RECORDING.exists():
        assert recording_path().read_bytes() == SHARED_RECORDING.read_bytes()
    entries = [json.loads(line) for line in recording_path().read_text().splitlines()]
    assert sum(1 for e in entries if e["dir"] == "in") == 137  # ack + 135 frames + unsub reply
    assert len(RECORDING.frames) == 135
    assert RECORDING.symbols == ["MBB", "FPT", "VCB"] and RECORDING.boards == ["MAIN"]
    assert RECORDING.ack == "Subscribed stockRealtimeBySymbolsAndBoards"


@pytest.mark.parametrize("user_agent", [None, "python-requests/2.32", "Python/3.11 websockets/17"])
def test_handshake_without_browser_user_agent_is_forbidden(user_agent):
    with SsiServer(speed=0) as server:
        header = {"User-Agent": user_agent} if user_agent else None
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            websocket.create_connection(server.realtime_url, header=header, timeout=5)
        assert info.value.status_code == 403
        assert server.total_connections == 0
        with pytest.raises(websocket.WebSocketBadStatusException) as wrong_path:
            websocket.create_connection(f"{server.url}/other", header=BROWSER, timeout=5)
        assert wrong_path.value.status_code == 404


def test_full_session_at_speed_zero_reproduces_every_recorded_in_frame(readers):
    with SsiServer(speed=0) as server:
        reader = connect(readers, server)
        started = time.monotonic()
        reader.send(RECORDING.subscribe_message)
        assert reader.wait_texts(1 + 135, timeout=5)
        assert server.done.wait(5)
        assert time.monotonic() - started < 5
        assert reader.texts[0] == RECORDING.ack
        assert reader.texts[1:] == [f.raw for f in RECORDING.frames]
        assert server.wait_frames_sent(135)
        assert server.frames_sent == [f.raw for f in RECORDING.frames]

        reader.send(RECORDING.unsubscribe_message)
        assert reader.wait_texts(137)
        assert reader.texts[136] == RECORDING.unsubscribe_reply
        recorded_in = [
            json.loads(line)["raw"]
            for line in recording_path().read_text().splitlines()
            if json.loads(line)["dir"] == "in"
        ]
        # the same 137 frames the real server sent (there the unsubscribe came mid-session)
        assert sorted(reader.texts) == sorted(recorded_in)
        assert server.received[0].data == RECORDING.subscribe_message


def test_only_subscribed_symbols_are_replayed_in_order(readers):
    with SsiServer(speed=0) as server:
        reader = connect(readers, server)
        reader.send(sub_message(["FPT", "VCB"]))
        expected = frames_of({"FPT", "VCB"})
        assert reader.wait_texts(1 + len(expected))
        assert server.done.wait(5)
        server.flush()
        assert reader.texts == [RECORDING.ack, *expected]
        assert len(expected) == 54 + 17


def test_recorded_timing_scaled_by_speed_and_unsubscribe_stops_a_symbol(readers):
    speed = 0.02  # 45 s of recording in about 0.9 s
    with SsiServer(speed=speed) as server:
        reader = connect(readers, server)
        started = time.monotonic()
        reader.send(RECORDING.subscribe_message)
        first_vcb = next(f.raw for f in RECORDING.frames if f.symbol == "VCB")
        assert reader.wait_for(lambda: first_vcb in reader.texts, 10)
        reader.send(sub_message(["VCB"], "unsub"))
        assert server.done.wait(10)
        assert reader.wait_for(lambda: RECORDING.frames[-1].raw in reader.texts)  # an FPT frame
        elapsed = time.monotonic() - started
        assert elapsed >= RECORDING.span_ms / 1000 * speed * 0.9

        reply = next(t for t in reader.texts if t.startswith("{"))
        assert json.loads(reply) == {
            "result": "complete",
            "type": "unsub",
            "topic": "stockRealtimeBySymbolsAndBoards",
            "variables": {"symbols": ["VCB"], "boardIds": ["MAIN"]},
        }
        after = reader.texts[reader.texts.index(reply) + 1 :]
        assert after and not any("|S#VCB|" in t for t in after)
        frames = [t for t in reader.texts if "|" in t]
        recorded = [f.raw for f in RECORDING.frames]
        assert frames == [r for r in recorded if r in frames]  # recorded order


def test_shift_to_now_moves_the_time_fields_only(readers):
    with SsiServer(speed=0, shift_to_now=True) as server:
        reader = connect(readers, server)
        before = int(time.time() * 1000)
        reader.send(RECORDING.subscribe_message)
        assert reader.wait_texts(136)
        sent = reader.texts[1:]
    delta = int(sent[0].split("|")[101]) - int(RECORDING.frames[0].raw.split("|")[101])
    assert delta >= before - RECORDING.t_ack
    for got, frame in zip(sent, RECORDING.frames, strict=True):
        assert got == shift_frame(frame.raw, delta)
        fields, orig = got.split("|"), frame.raw.split("|")
        assert int(fields[100]) - int(orig[100]) == delta
        assert fields[:100] == orig[:100]
    assert abs(int(sent[0].split("|")[101]) - before) < 5_000  # looks current


def test_looping_replay_keeps_time_moving_forward(readers):
    with SsiServer(speed=0.001, loop=True, shift_to_now=True) as server:
        reader = connect(readers, server)
        reader.send(sub_message(["MBB"]))
        assert server.wait_for(lambda: server.passes_completed >= 3, 10)
        assert not server.done.is_set()
        assert reader.wait_texts(1 + 3 * 64)  # the ack, then three passes of MBB
        stamps = [int(t.split("|")[101]) for t in reader.texts[1:]]
    assert stamps == sorted(stamps)


def test_drop_all_and_malformed_frames(readers):
    with SsiServer(speed=0) as server:
        reader = connect(readers, server)
        assert server.wait_connections(1)
        assert server.inject_malformed("MAIN|S#FPT|broken") == 1
        assert reader.wait_texts(1) and reader.texts == ["MAIN|S#FPT|broken"]
        assert server.drop_all() == 1
        assert reader.wait_ended(5)
        assert reader.close_code is None and reader.error is not None
        assert server.wait_connections(0)


def test_serve_feeds_prints_the_variables_to_use():
    out = io.StringIO()
    with serve_feeds("127.0.0.1", 0, 0, out=out) as feeds:
        lines = dict(
            line.split("=", 1) for line in out.getvalue().splitlines() if not line.startswith("#")
        )
        assert lines == {
            "INGEST_BINANCE_TRADES__BASE_URL": feeds.binance.url,
            "INGEST_BINANCE_TRADES__REST_BASE_URL": feeds.binance.rest_url,
            "INGEST_SSI_IBOARD__BASE_URL": feeds.ssi.url,
            "INGEST_OKX_TRADES__BASE_URL": feeds.more["okx_trades"].url,
            "INGEST_OKX_TRADES__REST_BASE_URL": feeds.more["okx_trades"].rest_url,
            "INGEST_BYBIT_TRADES__BASE_URL": feeds.more["bybit_trades"].url,
            "INGEST_BINANCE_DEPTH__BASE_URL": feeds.more["binance_depth"].url,
            "INGEST_BINANCE_DEPTH__REST_BASE_URL": feeds.more["binance_depth"].rest_url,
        }
        assert feeds.ssi.shift_to_now and feeds.ssi.loop
    assert not feeds.binance.running and not feeds.ssi.running
    assert not any(server.running for server in feeds.more.values())


def test_replay_all_serves_an_ssi_variant_and_the_behaviours_of_real_servers():
    from curl_cffi import requests as cffi

    from ingestion_pipelines.standins.serve import replay_all

    with replay_all(
        "127.0.0.1",
        0,
        0,
        0,
        out=None,
        behaviours={"fmarket_page_cap": 5},
        ssi_recording="97-fields",
    ) as env:
        base = env["INGEST_FMARKET_FUNDS__BASE_URL"]
        body = {"page": 1, "pageSize": 100, "types": ["NEW_FUND", "TRADING_FUND"]}
        data = cffi.post(f"{base}/res/products/filter", json=body, timeout=10).json()["data"]
        assert len(data["rows"]) == 5 and data["total"] == 58  # the cap applied
        url = env["INGEST_SSI_IBOARD__BASE_URL"] + "/realtime"
        ws = websocket.create_connection(url, header=[f"User-Agent: {BROWSER_USER_AGENT}"])
        try:
            ws.send(RECORDING.subscribe_message)
            assert ws.recv().startswith("Subscribed")
            assert len(ws.recv().split("|")) == 97
        finally:
            ws.close()
