"""The local Binance server speaks the real protocol, seen through websocket-client and curl_cffi."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
from curl_cffi import requests as curl_requests

from ingestion_pipelines.feeds.binance.replay import BinanceServer, Trade
from ingestion_pipelines_tests.replay_ws.wsclient import NoPongWebSocket, WsReader

DECIMAL_8 = re.compile(r"^\d+\.\d{8}$")
TRADE_KEYS = ["e", "E", "s", "t", "p", "q", "T", "m", "M"]
REST_KEYS = ["id", "price", "qty", "quoteQty", "time", "isBuyerMaker", "isBestMatch"]


@pytest.fixture
def server() -> Iterator[BinanceServer]:
    """A server that only trades when the test calls generate()."""
    with BinanceServer(rate=0, start_trade_id={"BTCUSDT": 1000, "ETHUSDT": 5}) as srv:
        yield srv


@pytest.fixture
def readers() -> Iterator[list[WsReader]]:
    opened: list[WsReader] = []
    yield opened
    for reader in opened:
        reader.close()


def connect(readers: list[WsReader], url: str, **kwargs) -> WsReader:
    reader = WsReader(url, **kwargs)
    readers.append(reader)
    return reader


def rest(server: BinanceServer, query: str) -> curl_requests.Response:
    return curl_requests.get(f"{server.rest_url}/api/v3/historicalTrades?{query}", timeout=5)


def assert_matches_journal(data: dict, trade: Trade) -> None:
    assert (data["s"], data["t"], data["p"], data["q"], data["T"], data["m"]) == (
        trade.symbol,
        trade.id,
        trade.price,
        trade.qty,
        trade.time,
        trade.is_buyer_maker,
    )


def test_combined_stream_frames_have_the_real_shape_and_consecutive_ids(readers):
    with BinanceServer(
        rate=400, paused=True, start_trade_id={"BTCUSDT": 1000, "ETHUSDT": 5}
    ) as srv:
        reader = connect(readers, srv.stream_url(["BTCUSDT", "ETHUSDT"]))
        assert srv.wait_subscribed("ETHUSDT")
        srv.resume()
        assert reader.wait_texts(60)
        srv.pause()
        messages = reader.json()[:60]

    ids: dict[str, list[int]] = {"BTCUSDT": [], "ETHUSDT": []}
    journal = {s: {t.id: t for t in srv.trades(s)} for s in ids}
    for message in messages:
        assert list(message) == ["stream", "data"]
        data = message["data"]
        assert list(data) == TRADE_KEYS
        assert data["e"] == "trade" and data["M"] is True
        assert message["stream"] == f"{data['s'].lower()}@trade"
        assert isinstance(data["t"], int) and isinstance(data["m"], bool)
        assert DECIMAL_8.match(data["p"]) and DECIMAL_8.match(data["q"])
        assert data["E"] >= data["T"] > 1_600_000_000_000
        assert_matches_journal(data, journal[data["s"]][data["t"]])
        ids[data["s"]].append(data["t"])
    assert ids["BTCUSDT"][:3] == [1000, 1001, 1002]
    assert ids["ETHUSDT"][:3] == [5, 6, 7]
    for seq in ids.values():
        assert seq == list(range(seq[0], seq[0] + len(seq)))


def test_raw_path_and_live_subscribe_unsubscribe(server, readers):
    direct = connect(readers, f"{server.url}/ws/btcusdt@trade")
    live = connect(readers, f"{server.url}/ws")
    assert server.wait_connections(2)

    live.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@trade", "btcusdt@trade"], "id": 1})
    assert live.wait_texts(1)
    assert live.json()[0] == {"result": None, "id": 1}
    live.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 3})
    assert live.wait_texts(2)
    assert live.json()[1] == {"result": ["ethusdt@trade", "btcusdt@trade"], "id": 3}

    trade = server.generate(1, "ETHUSDT")[0]
    assert live.wait_texts(3)
    event = live.json()[2]
    assert list(event) == TRADE_KEYS  # raw streams are not wrapped
    assert_matches_journal(event, trade)

    live.send_json({"method": "UNSUBSCRIBE", "params": ["ethusdt@trade"], "id": "abc"})
    assert live.wait_texts(4)
    assert live.json()[3] == {"result": None, "id": "abc"}
    server.generate(1, "ETHUSDT")
    btc = server.generate(1, "BTCUSDT")[0]
    assert live.wait_texts(5) and direct.wait_texts(1)
    assert live.json()[4]["t"] == btc.id  # no ETH trade after UNSUBSCRIBE
    assert direct.json() == [live.json()[4] | {"E": direct.json()[0]["E"]}]

    live.send("not json")
    live.send_json({"method": "PING", "id": 9})
    assert live.wait_texts(7)
    assert live.json()[5]["code"] == 3 and live.json()[5]["msg"].startswith("Invalid JSON")
    assert live.json()[6]["code"] == 2 and "unknown variant PING" in live.json()[6]["msg"]
    sent = [r.data for r in server.received if r.kind == "text"]
    assert json.loads(sent[0])["method"] == "SUBSCRIBE"


def test_pings_keep_answering_clients_and_drop_silent_ones(readers):
    with BinanceServer(rate=0, ping_interval=0.1, pong_timeout=0.5) as srv:
        good = connect(readers, f"{srv.url}/ws/btcusdt@trade")
        assert srv.wait_connections(1)
        good_id = srv.clients()[0].conn_id
        silent = connect(readers, f"{srv.url}/ws/btcusdt@trade", class_=NoPongWebSocket)
        assert srv.wait_connections(2)

        assert silent.wait_ended(5), "a client that never pongs must be disconnected"
        assert silent.close_code == 1008
        assert srv.wait_connections(1)
        # the answering client stays: it keeps ponging well past the pong timeout
        assert srv.wait_for(
            lambda: sum(1 for r in srv.received if r.kind == "pong" and r.conn_id == good_id) >= 10,
            10,
        )
        assert good.wait_for(lambda: good.pings >= 10, 5)
        assert not good.ended.is_set()
        assert [c.conn_id for c in srv.clients()] == [good_id]


def test_skip_ids_makes_a_gap_that_historical_trades_fills_with_identical_values(server, readers):
    reader = connect(readers, server.stream_url(["BTCUSDT"]))
    assert server.wait_subscribed("BTCUSDT")
    server.generate(5, "BTCUSDT")
    server.skip_ids("BTCUSDT", 4)
    server.generate(10, "BTCUSDT")
    assert reader.wait_texts(11)
    streamed = {m["data"]["t"]: m["data"] for m in reader.json()}
    assert sorted(streamed) == [*range(1000, 1005), *range(1009, 1015)]
    assert server.skipped_ids("BTCUSDT") == [1005, 1006, 1007, 1008]
    assert server.wait_sent("BTCUSDT", 1014)
    assert server.sent_ids("BTCUSDT") == sorted(streamed)

    response = rest(server, "symbol=BTCUSDT&fromId=1003&limit=8")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    rows = response.json()
    assert [r["id"] for r in rows] == list(range(1003, 1011))
    journal = {t.id: t for t in server.trades("BTCUSDT")}
    for row in rows:
        assert list(row) == REST_KEYS and row["isBestMatch"] is True
        assert row == journal[row["id"]].rest()
        if row["id"] in streamed:  # the same values the stream carried
            data = streamed[row["id"]]
            assert (row["price"], row["qty"], row["time"], row["isBuyerMaker"]) == (
                data["p"],
                data["q"],
                data["T"],
                data["m"],
            )


def test_rest_errors_limits_and_forgotten_history(server):
    server.generate(1200, "BTCUSDT")
    missing = rest(server, "fromId=1")
    assert missing.status_code == 400 and missing.json()["code"] == -1102
    bad = rest(server, "symbol=DOGEUSDT")
    assert bad.status_code == 400
    assert bad.json() == {"code": -1121, "msg": "Invalid symbol."}
    assert rest(server, "symbol=BTCUSDT&fromId=x").json()["code"] == -1100

    latest = rest(server, "symbol=BTCUSDT").json()  # no fromId: the most recent 500
    assert [r["id"] for r in latest] == list(range(1700, 2200))
    capped = rest(server, "symbol=BTCUSDT&fromId=1000&limit=5000").json()
    assert len(capped) == 1000 and capped[0]["id"] == 1000
    assert rest(server, "symbol=BTCUSDT&fromId=2200").json() == []

    server.forget_before("BTCUSDT", 1100)  # history exhausted before 1100
    rows = rest(server, "symbol=BTCUSDT&fromId=1050&limit=10").json()
    assert [r["id"] for r in rows] == list(range(1100, 1110))
    server.set_history_limit(50)
    assert server.rest_available_from("BTCUSDT") == 2150
    assert rest(server, "symbol=BTCUSDT&fromId=1&limit=3").json()[0]["id"] == 2150

    server.fail_rest(1, 429)
    limited = rest(server, "symbol=BTCUSDT&fromId=2150&limit=1")
    assert limited.status_code == 429 and limited.json()["code"] == -1003
    assert limited.headers["retry-after"] == "1"
    assert rest(server, "symbol=BTCUSDT&fromId=2150&limit=1").status_code == 200
    assert server.rest_requests[-1] == "/api/v3/historicalTrades?symbol=BTCUSDT&fromId=2150&limit=1"


def test_drop_all_drops_without_close_frame_and_the_market_goes_on(server, readers):
    reader = connect(readers, server.stream_url(["BTCUSDT"]))
    assert server.wait_subscribed("BTCUSDT")
    server.generate(2, "BTCUSDT")
    assert reader.wait_texts(2)

    assert server.drop_all() == 1
    assert reader.wait_ended(5)
    assert reader.close_code is None and reader.error is not None  # no close frame
    assert server.wait_connections(0)

    server.generate(3, "BTCUSDT")  # while nobody listens
    again = connect(readers, server.stream_url(["BTCUSDT"]))
    assert server.wait_subscribed("BTCUSDT")
    server.generate(1, "BTCUSDT")
    assert again.wait_texts(1)
    assert again.json()[0]["data"]["t"] == 1005  # 1002..1004 were missed: a gap to fill
    assert [t.id for t in server.trades("BTCUSDT")] == list(range(1000, 1006))


def test_close_all_server_shutdown_and_malformed_frames(server, readers):
    reader = connect(readers, server.stream_url())
    assert server.wait_subscribed("BTCUSDT")
    assert server.inject_malformed('{"stream":"btcusdt@trade","data":{"e":"tra') == 1
    assert server.inject_malformed(b"\xff\xfe", text=False) == 1
    assert reader.wait_for(lambda: len(reader.texts) == 1 and len(reader.binaries) == 1)
    assert reader.texts[0] == '{"stream":"btcusdt@trade","data":{"e":"tra'

    before = int(time.time() * 1000)
    assert server.send_server_shutdown(close_after_s=0.05) == 1
    assert reader.wait_ended(5)
    shutdown = json.loads(reader.texts[1])
    assert list(shutdown) == ["e", "E"] and shutdown["e"] == "serverShutdown"
    assert shutdown["E"] >= before
    assert reader.close_code == 1001

    other = connect(readers, server.stream_url())
    assert server.wait_connections(1)
    assert server.close_all(1000) == 1
    assert other.wait_ended(5) and other.close_code == 1000


def test_connections_are_cut_at_max_age(readers):
    with BinanceServer(rate=0, max_connection_age_s=0.3) as srv:
        started = time.monotonic()
        reader = connect(readers, srv.stream_url())
        assert reader.wait_ended(5)
        assert reader.close_code == 1001
        assert time.monotonic() - started >= 0.25
        assert srv.wait_connections(0)


def test_restart_keeps_the_port_and_the_trade_ids(server, readers):
    url = server.stream_url(["BTCUSDT"])
    reader = connect(readers, url)
    assert server.wait_subscribed("BTCUSDT")
    server.generate(2, "BTCUSDT")
    assert reader.wait_texts(2)

    server.restart()
    assert reader.wait_ended(5) and reader.close_code == 1001
    again = connect(readers, url)
    assert server.wait_subscribed("BTCUSDT")
    server.generate(1, "BTCUSDT")
    assert again.wait_texts(1)
    assert again.json()[0]["data"]["t"] == 1002


@pytest.mark.parametrize("rate", [None, 2000.0])
def test_benchmark_sends_prebuilt_trades_with_send_time(server, readers, rate):
    reader = connect(readers, server.stream_url(["BTCUSDT"]))
    run = server.benchmark(300, rate=rate, symbol="BTCUSDT", min_clients=1)
    assert run.wait(10) and run.error is None
    assert run.clients == 1 and (run.first_id, run.last_id) == (1000, 1299)
    assert reader.wait_texts(300)
    received_at = time.time() * 1000
    data = [m["data"] for m in reader.json()]
    assert [d["t"] for d in data] == list(range(1000, 1300))
    assert all(list(d) == TRADE_KEYS for d in data)
    assert all(d["T"] <= d["E"] <= received_at for d in data)
    if rate:
        assert run.duration_s is not None and run.duration_s >= 0.1  # 300 at 2000/s
    assert [t.id for t in server.trades("BTCUSDT")] == list(range(1000, 1300))
    assert server.generate(1, "BTCUSDT")[0].id == 1300  # generation resumes after the run
