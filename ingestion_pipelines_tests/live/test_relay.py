"""`ingest live` against a real Redis: SSE relay and Last-Event-ID resume without a hole, the
WebSocket relay, a slow client dropped while the others get everything, and the no-Redis
message. The relay runs on a real uvicorn (in a thread, or as the `ingest live` process)."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time

import orjson
import pytest
import redis
import websocket

from ingestion_pipelines_tests.live.helpers import (
    SSEReader,
    get_json,
    live_in_thread,
    live_process,
    wait_for,
)
from ingestion_pipelines_tests.testbed.base import free_port
from ingestion_pipelines_tests.testbed.redis import RedisServer

TICKS = "ticks:binance:BTCUSDT"


def _tick(n: int) -> bytes:
    """What the sidecar's writer publishes for one committed batch: a JSON array of rows."""
    row = {
        "source": "binance",
        "symbol": "BTCUSDT",
        "trade_id": 1000 + n,
        "price": f"97{n:03d}.10000000",
        "quantity": "0.00120000",
        "side": "buy" if n % 2 else "sell",
        "traded_at": "2026-11-30T08:00:00.123000+00:00",
        "received_at": "2026-11-30T08:00:00.150000+00:00",
    }
    return orjson.dumps([row])


def test_sse_relays_then_resumes_with_last_event_id_without_a_hole(redis_url):
    r = redis.Redis.from_url(redis_url)
    with live_in_thread(redis_url, heartbeat_s=0.3) as port:
        first = SSEReader(port, "channel=ticks:*")
        assert first.response.status == 200
        assert first.response.getheader("Content-Type").startswith("text/event-stream")
        for n in range(10):
            r.publish("bars:binance:BTCUSDT", b'{"not": "for this client"}')
            r.publish(TICKS, _tick(n))
        got = first.messages(5)
        assert [e.data["data"][0]["trade_id"] for e in got] == [1000 + n for n in range(5)]
        assert all(e.data["channel"] == TICKS and e.data["id"] == e.id for e in got)
        assert got[0].data["data"][0]["price"] == "97000.10000000"  # decimals stay exact text
        # the writes to it are counted (its `retry:` line, then at least one batch)
        assert get_json(port, "/status")["writes"] >= 2
        first.close()  # the browser loses its connection here

        for n in range(10, 20):
            r.publish(TICKS, _tick(n))
        wait_for(lambda: get_json(port, "/status")["relayed"] >= 30, 5, "every message relayed")

        resumed = SSEReader(port, "channel=ticks:*", last_event_id=got[-1].id)
        events = resumed.messages(15)
        ids = [e.data["data"][0]["trade_id"] for e in events]
        assert ids == [1000 + n for n in range(5, 20)], "resume must continue exactly after the id"
        seqs = [int(e.id.split("-")[1]) for e in events]
        assert seqs == sorted(seqs)

        beat = resumed.next()  # nothing more is published: the next thing is a heartbeat
        assert beat is not None and beat.comment == "heartbeat"
        resumed.close()


def test_resume_older_than_the_buffer_says_what_was_lost(redis_url):
    r = redis.Redis.from_url(redis_url)
    with live_in_thread(redis_url, replay_size=5, queue_size=2) as port:  # backlog > queue
        reader = SSEReader(port, "channel=ticks:*")
        for n in range(3):
            r.publish(TICKS, _tick(n))
        first = reader.messages(1)[0]
        reader.close()
        for n in range(3, 12):
            r.publish(TICKS, _tick(n))
        wait_for(lambda: get_json(port, "/status")["relayed"] >= 12, 5, "every message relayed")

        resumed = SSEReader(port, "channel=ticks:*", last_event_id=first.id)
        gap = resumed.next()
        assert gap.event == "gap"
        assert gap.data["missed"] == 6  # ids 2..7 left the 5-message buffer
        events = resumed.messages(5)
        assert [e.data["data"][0]["trade_id"] for e in events] == [1007, 1008, 1009, 1010, 1011]
        resumed.close()

        foreign = SSEReader(port, "channel=ticks:*", last_event_id="12345-3")
        gap = foreign.next()
        assert gap.event == "gap" and gap.data["missed"] is None
        assert "restarted" in gap.data["reason"]
        foreign.close()


def test_websocket_relays_bars_and_resumes(redis_url):
    r = redis.Redis.from_url(redis_url)
    bar = {
        "source": "binance",
        "symbol": "ETHUSDT",
        "bar_start": "2026-11-30T08:01:00+00:00",
        "open": "3601.10",
        "high": "3602.00",
        "low": "3600.50",
        "close": "3601.90",
        "volume": "12.345",
        "trade_count": 17,
    }
    with live_in_thread(redis_url, heartbeat_s=0.3) as port:
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/ws?channel=bars:*:ETHUSDT", timeout=5
        )
        wait_for(lambda: get_json(port, "/status")["clients"] == 1, 5, "the WS client")
        r.publish(TICKS, _tick(1))
        r.publish("bars:binance:BTCUSDT", orjson.dumps({**bar, "symbol": "BTCUSDT"}))
        r.publish("bars:binance:ETHUSDT", orjson.dumps(bar))
        message = json.loads(ws.recv())
        assert message["channel"] == "bars:binance:ETHUSDT"
        assert message["data"] == bar
        heartbeat = json.loads(ws.recv())
        assert heartbeat == {"event": "heartbeat"}
        ws.close()

        r.publish("bars:binance:ETHUSDT", orjson.dumps({**bar, "close": "3603.00"}))
        wait_for(lambda: get_json(port, "/status")["relayed"] >= 4, 5, "the next bar relayed")
        again = websocket.create_connection(
            f"ws://127.0.0.1:{port}/ws?channel=bars:*:ETHUSDT&last_event_id={message['id']}",
            timeout=5,
        )
        resumed = json.loads(again.recv())
        assert resumed["data"]["close"] == "3603.00"
        again.close()


def test_a_slow_client_is_dropped_and_never_holds_back_the_others(redis_url):
    r = redis.Redis.from_url(redis_url)
    count, filler = 6000, "x" * 1000  # more than the slow client's socket buffers hold
    with live_in_thread(redis_url) as port:  # the default queue: 1,000 messages
        fast = websocket.create_connection(f"ws://127.0.0.1:{port}/ws?channel=ticks:*", timeout=10)
        received: list[int] = []

        def read_fast() -> None:  # a client that keeps up, reading as it goes
            while len(received) < count:
                message = json.loads(fast.recv())
                if "data" in message:
                    received.append(message["data"][0]["trade_id"])

        reader = threading.Thread(target=read_fast, daemon=True)
        reader.start()
        slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", port))
        slow.sendall(
            b"GET /stream?channel=ticks:* HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )  # never reads
        wait_for(lambda: get_json(port, "/status")["clients"] == 2, 5, "both clients")

        started = time.monotonic()
        for batch in range(0, count, 50):  # 2,000 messages/s, 2 MB/s
            pipe = r.pipeline(transaction=False)
            for n in range(batch, batch + 50):
                pipe.publish(TICKS, orjson.dumps([{"trade_id": n, "pad": filler}]))
            pipe.execute()
            time.sleep(0.025)
        publish_s = time.monotonic() - started

        reader.join(30)
        assert received == list(range(count)), "the fast client must get every message in order"
        status = wait_for(
            lambda: (s := get_json(port, "/status"))["dropped_clients"] == 1 and s, 10, "a drop"
        )
        assert status["clients"] == 1
        assert publish_s < 12, f"publishing took {publish_s:.1f} s: something held Redis back"
        # Redis never had to buffer for the relay: its pub/sub client is not behind.
        relay = [c for c in r.client_list() if int(c.get("psub", 0)) > 0]
        assert relay and all(int(c["omem"]) < 1_000_000 for c in relay), relay

        # Its socket is full, so the farewell event may not fit: the server closes it anyway
        # (an EventSource then reconnects with its Last-Event-ID).
        slow.settimeout(5)
        while slow.recv(65536):
            pass
        slow.close()
        fast.close()


def test_bad_pattern_is_refused(redis_url):
    with live_in_thread(redis_url) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/stream?channel=secrets:*")
        response = conn.getresponse()
        assert response.status == 400
        assert "ticks:*, bars:*, progress:*" in response.read().decode()
        conn.close()


def test_without_redis_every_endpoint_says_so(tmp_path):
    port = free_port()
    log = tmp_path / "live.log"
    with live_process({}, log, port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/stream?channel=ticks:*")
        response = conn.getresponse()
        assert response.status == 503
        assert "INGEST_REDIS_URL is not set" in response.read().decode()
        conn.request("GET", "/")
        page = conn.getresponse().read().decode()
        assert "<title>ingest live</title>" in page and "EventSource" in page
        conn.close()
        assert "INGEST_REDIS_URL is not set" in get_json(port, "/status")["message"]

        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=5)
        error = json.loads(ws.recv())
        assert error["event"] == "error" and "INGEST_REDIS_URL is not set" in error["message"]
        opcode, frame = ws.recv_data_frame(True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == 1011
        assert b"INGEST_REDIS_URL is not set" in frame.data[2:]
    assert "INGEST_REDIS_URL is not set" in log.read_text()


def test_the_relay_imports_no_dagster():
    code = (
        "import sys, ingestion_pipelines.live.app, ingestion_pipelines.live.serve;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_losing_redis_is_told_to_every_client_then_relaying_resumes():
    own = RedisServer().start()  # its own server: this test stops it
    try:
        url = own.url()
        with live_in_thread(url, heartbeat_s=0.5) as port:
            reader = SSEReader(port, "channel=ticks:*")
            wait_for(lambda: get_json(port, "/status")["clients"] == 1, 5, "the client")
            own.client().publish(TICKS, _tick(1))
            assert reader.messages(1)[0].data["data"][0]["trade_id"] == 1001

            own.stop()
            gap = reader.next()
            while gap.comment is not None:  # heartbeats until the loss is noticed
                gap = reader.next()
            assert gap.event == "gap" and "the relay lost Redis" in gap.data["reason"]
            assert "unreachable" in get_json(port, "/status")["redis"]

            own.start()
            wait_for(lambda: get_json(port, "/status")["redis"] == "connected", 20, "reconnect")
            own.client().publish(TICKS, _tick(2))
            assert reader.messages(1)[0].data["data"][0]["trade_id"] == 1002
            reader.close()
    finally:
        own.close()


def test_recent_bars_for_the_chart_from_trade_bar_1m(database_url, redis_url):
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from ingestion_pipelines.storage.engines import ensure_schema
    from ingestion_pipelines.storage.tables import trade_bar_1m
    from ingestion_pipelines.storage.upsert import upsert

    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    rows = [
        {
            "source": "binance",
            "symbol": "BTCUSDT",
            "bar_start": minute - timedelta(minutes=age),
            "open": Decimal("97000.123456789012345678"),
            "high": Decimal("97010"),
            "low": Decimal("96990.5"),
            "close": Decimal("97005.25"),
            "volume": Decimal("1.5"),
            "trade_count": age + 1,
        }
        for age in (0, 5, 90)
    ]
    rows.append({**rows[0], "symbol": "ETHUSDT"})
    upsert(ensure_schema(database_url), trade_bar_1m, rows)
    with live_in_thread(redis_url, bars_database_url=database_url) as port:
        got = get_json(port, "/bars?source=binance&symbol=BTCUSDT&minutes=60")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/bars?source=binance")
        refused = conn.getresponse()
        assert refused.status == 400 and b"symbol" in refused.read()
        conn.close()
    assert [b["trade_count"] for b in got] == [6, 1]  # oldest first; 90 min ago is out
    assert got[1]["open"] == "97000.123456789012345678"  # exact decimals as text
    assert datetime.fromisoformat(got[1]["bar_start"]) == minute


# ---------------------------------------------------------------- review findings (issue 22)


def test_a_malformed_last_event_id_is_a_400_not_a_500(redis_url):
    """As found: `Last-Event-ID: ²-1` passed str.isdigit() and int() raised: a 500."""
    with live_in_thread(redis_url) as port:
        for bad in ("²-1", "1-²", "１２-3", "-", "1-2-3", "x" * 5000):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.putrequest("GET", "/stream?channel=ticks:*")
            conn.putheader("Last-Event-ID", bad.encode())
            conn.endheaders()
            response = conn.getresponse()
            assert response.status == 400, bad
            assert b"Last-Event-ID" in response.read()
            conn.close()
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(
                f"ws://127.0.0.1:{port}/ws?last_event_id=%C2%B2-1", timeout=5
            )
        assert refused.value.status_code == 400
        assert get_json(port, "/status")["clients"] == 0


def test_cr_and_lf_inside_a_published_json_never_split_a_data_line(redis_url):
    """As found: valid JSON with raw CR/LF between tokens went out as is, and SSE readers cut
    the event at each one (a line starting `event:`/`id:` could even be injected)."""
    r = redis.Redis.from_url(redis_url)
    payload = b'{"price":\r\n"1.50",\r"qty":\n123456789012345678901234567890.000000000000000001,\r\n"x":"a\\nb"}'
    injected = b"[1,\n2,\r\nevent: dropped\n]"  # not JSON: relayed as a string
    with live_in_thread(redis_url) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/stream?channel=ticks:*")
        response = conn.getresponse()
        wait_for(lambda: get_json(port, "/status")["clients"] == 1, 5, "the client")
        r.publish(TICKS, payload)
        r.publish(TICKS, injected)
        raw = b""
        while raw.count(b"\n\nid:") < 1 or not raw.endswith(b"\n\n") or raw.count(b"data:") < 2:
            raw += response.read1(65536)
        conn.close()
    events = [e for e in raw.split(b"\n\n") if b"data:" in e]
    for event in events:
        lines = event.split(b"\n")
        assert [line.split(b":")[0] for line in lines] == [b"id", b"data"], event
        assert b"\r" not in event
    first = json.loads(events[0].split(b"\n")[1][6:])
    assert first["data"]["price"] == "1.50" and first["data"]["x"] == "a\nb"
    # numbers exactly as published: the document is re-serialised without a float round trip
    assert b"123456789012345678901234567890.000000000000000001" in events[0]
    second = json.loads(events[1].split(b"\n")[1][6:])
    assert second["data"] == injected.decode()


def test_dispatch_matches_each_subscription_once_not_each_client_and_pattern(monkeypatch):
    """As found: every message was matched against every client x pattern, with no caps."""
    import asyncio

    from ingestion_pipelines.live import hub as hub_module

    calls = 0
    real = hub_module.fnmatchcase

    def counting(name, pattern):
        nonlocal calls
        calls += 1
        return real(name, pattern)

    monkeypatch.setattr(hub_module, "fnmatchcase", counting)

    async def scenario() -> tuple[int, int, list[int]]:
        hub = hub_module.Hub(None, limits=hub_module.Limits(clients=5000, per_user=5000))
        patterns = [f"ticks:s{n}:*" for n in range(15)] + ["ticks:binance:*"]
        clients = [hub.subscribe(patterns, user=f"u{n % 50}")[0] for n in range(1000)]
        clients += [hub.subscribe(["bars:*"])[0] for _ in range(10)]
        hub.dispatch("ticks:binance:BTCUSDT", b"[1]")
        first = calls
        for n in range(1000):
            hub.dispatch("ticks:binance:BTCUSDT", b"[%d]" % n)
        got = [len(c.take()) for c in clients]
        return first, calls, got

    first, total, got = asyncio.run(scenario())
    assert first <= 16 + 1  # one subscription's patterns (and the other's), once
    assert total == first  # the route is cached: no matching per message after that
    assert got == [1001] * 1000 + [0] * 10


def test_a_feed_forgets_what_its_clients_have_and_drops_only_the_one_behind():
    import asyncio

    from ingestion_pipelines.live.hub import Hub

    async def scenario():
        hub = Hub(None, queue_size=10)
        fast, _ = hub.subscribe(["ticks:*"])
        slow, _ = hub.subscribe(["ticks:*"])
        got, sse = [], b""
        for n in range(100):
            hub.dispatch("ticks:binance:BTCUSDT", b"[%d]" % n)
            if n % 3 == 0:
                got += [json.loads(m.json)["data"][0] for m in fast.take()]
        sse = slow.take_sse()
        return hub, fast, slow, got + [json.loads(m.json)["data"][0] for m in fast.take()], sse

    hub, fast, slow, got, sse = asyncio.run(scenario())
    assert got == list(range(100))
    assert slow.dropped and slow.slow and slow.missed > 10 and sse == b""
    assert len(fast.feed.log) < 20  # what every live client has is forgotten
    hub.unsubscribe(slow)
    assert hub.dropped == 1 and hub.dropped_messages == slow.missed


def test_a_feed_wakes_its_clients_at_once_then_at_most_once_per_flush_interval():
    """A message after a quiet spell goes out at once; the ones following it within the flush
    interval wait and go out together (one socket write per client, not one per message)."""
    import asyncio

    from ingestion_pipelines.live.hub import Hub

    async def scenario() -> tuple[list[int], bool, list[int]]:
        hub = Hub(None, flush_s=3600.0)
        client, _ = hub.subscribe(["ticks:*"])
        waiting = asyncio.ensure_future(client.wait())
        await asyncio.sleep(0)  # the client is waiting
        hub.dispatch("ticks:binance:BTCUSDT", b"[0]")
        await asyncio.wait_for(waiting, 5)  # the first: at the end of the loop tick
        first = [json.loads(m.json)["data"][0] for m in client.take()]
        waiting = asyncio.ensure_future(client.wait())
        await asyncio.sleep(0)
        for n in range(1, 4):
            hub.dispatch("ticks:binance:BTCUSDT", b"[%d]" % n)
        done, _ = await asyncio.wait([waiting], timeout=0.3)
        rest = [json.loads(m.json)["data"][0] for m in client.take()]  # what a heartbeat takes
        waiting.cancel()
        return first, bool(done), rest

    first, woken, rest = asyncio.run(scenario())
    assert first == [0]
    assert not woken  # held back until the flush interval ends
    assert rest == [1, 2, 3]  # kept, in order, for the next write


def test_a_steady_stream_wakes_a_client_once_per_flush_interval_with_everything():
    import asyncio

    from ingestion_pipelines.live.hub import Hub

    async def scenario() -> tuple[int, list[int], float]:
        hub = Hub(None, flush_s=0.1)
        started = asyncio.get_running_loop().time()
        client, _ = hub.subscribe(["ticks:*"])
        got: list[int] = []
        wakes = 0

        async def reader() -> None:
            nonlocal wakes
            while True:
                await client.wait()
                wakes += 1
                got.extend(json.loads(m.json)["data"][0] for m in client.take())

        task = asyncio.ensure_future(reader())
        await asyncio.sleep(0)
        for n in range(100):  # 100 messages over about half a second
            hub.dispatch("ticks:binance:BTCUSDT", b"[%d]" % n)
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.25)  # the last flush interval ends
        task.cancel()
        return wakes, got, asyncio.get_running_loop().time() - started

    wakes, got, elapsed = asyncio.run(scenario())
    assert got == list(range(100))
    assert wakes <= elapsed / 0.1 + 2  # one wake per interval (however slow the machine), not 100
