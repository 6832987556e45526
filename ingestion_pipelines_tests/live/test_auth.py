"""The live relay behind tokens (issue 22): HS256 JWTs signed with INGEST_LIVE_JWT_SECRET, roles
deciding channels, the Origin/Host allow-list, caps per user, and `/metrics`. A real uvicorn, a
real Redis; tokens minted with PyJWT as a dashboard would."""

from __future__ import annotations

import base64
import http.client
import json
import time

import jwt
import orjson
import pytest
import redis
import websocket
from prometheus_client.parser import text_string_to_metric_families

from ingestion_pipelines.live.auth import LiveAuth, mint_token
from ingestion_pipelines.live.hub import Limits
from ingestion_pipelines_tests.live.helpers import (
    SSEReader,
    get_json,
    live_in_thread,
    request,
    wait_for,
)

SECRET = "k" * 40 + "-live-relay-test-secret-of-64-bytes-or-more"
ORIGIN = "https://live.example.com"


def token(sub="alice", role="viewer", ttl=300, secret=SECRET, **claims) -> str:
    now = int(time.time())
    body = {"sub": sub, "role": role, "iat": now, "exp": now + ttl, **claims}
    return jwt.encode(body, secret, algorithm="HS256")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def _unsigned(claims: dict) -> str:
    """A token with alg=none, as an attacker would build it."""
    part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.fixture
def relay(redis_url):
    operator = bearer(token("ops", "operator"))
    auth = LiveAuth(SECRET, [ORIGIN])
    with live_in_thread(redis_url, status_headers=operator, heartbeat_s=0.3, auth=auth) as port:
        yield port


def test_nothing_is_served_without_a_valid_token(relay):
    now = int(time.time())
    bad = {
        "missing": {},
        "forged": bearer(token(secret="another-secret-of-at-least-32-bytes!!")),
        "expired": bearer(token(ttl=-5)),
        "alg none": bearer(_unsigned({"sub": "eve", "role": "operator", "exp": now + 300})),
        "no exp": bearer(jwt.encode({"sub": "eve", "role": "viewer"}, SECRET, "HS256")),
        "no sub": bearer(jwt.encode({"role": "viewer", "exp": now + 60}, SECRET, "HS256")),
        "garbage": bearer("not.a.token"),
        "HS512": bearer(
            jwt.encode({"sub": "e", "role": "viewer", "exp": now + 60}, SECRET, "HS512")
        ),
    }
    for path in ("/stream", "/stream?channel=ticks:*", "/", "/status", "/metrics", "/bars"):
        for why, headers in bad.items():
            status, answer_headers, body = request(relay, path, headers)
            assert status == 401, (path, why, status, body)
            assert answer_headers["www-authenticate"].startswith("Bearer")
            assert b"ticks" not in body or b"token" in body, (path, why)
    status, _, _ = request(relay, "/stream", bearer(token(role="admin")))
    assert status == 403  # a role that may read nothing
    for headers in bad.values():
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(f"ws://127.0.0.1:{relay}/ws", timeout=5, header=headers)
        assert refused.value.status_code == 401
    assert request(relay, "/healthz")[0] == 200  # the one path without a token: says "ok"
    assert SECRET.encode() not in request(relay, "/metrics", bearer(token()))[2]


def test_a_valid_token_is_accepted_as_header_query_or_cookie(relay, redis_url):
    r = redis.Redis.from_url(redis_url)
    value = token("bob", "viewer")
    readers = [
        SSEReader(relay, "channel=ticks:*", headers=bearer(value)),
        SSEReader(relay, f"channel=ticks:*&token={value}"),
        SSEReader(relay, "channel=ticks:*", headers={"Cookie": f"ingest_live_token={value}"}),
    ]
    assert [reader.response.status for reader in readers] == [200, 200, 200]
    wait_for(lambda: get_json(relay, "/status", bearer(value))["clients"] == 3, 5, "3 clients")
    r.publish("ticks:binance:BTCUSDT", b'[{"trade_id": 1}]')
    for reader in readers:
        assert reader.messages(1)[0].data["data"] == [{"trade_id": 1}]
        reader.close()
    ws = websocket.create_connection(f"ws://127.0.0.1:{relay}/ws?token={value}", timeout=5)
    r.publish("bars:binance:BTCUSDT", b'{"close": "1.5"}')
    assert json.loads(ws.recv())["data"] == {"close": "1.5"}
    ws.close()


def test_the_page_sets_its_token_as_a_cookie_for_its_own_requests(relay):
    value = token("carol", "viewer")
    status, headers, body = request(relay, f"/?token={value}")
    assert status == 200 and b"<title>ingest live</title>" in body
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"ingest_live_token={value}")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert request(relay, "/status", {"Cookie": f"ingest_live_token={value}"})[0] == 200


def test_roles_decide_channels(relay, redis_url):
    r = redis.Redis.from_url(redis_url)
    viewer, operator = token("vic", "viewer"), token("olga", "operator")
    status, _, body = request(relay, "/stream?channel=progress:*", bearer(viewer))
    assert status == 403 and b"ticks:*, bars:*" in body
    seen_by_viewer = SSEReader(relay, "", headers=bearer(viewer))  # no channel: what it may read
    sneaky = SSEReader(relay, "channel=*ticks:*", headers=bearer(viewer))  # `*` spans colons
    seen_by_operator = SSEReader(relay, "", headers=bearer(operator))
    wait_for(lambda: get_json(relay, "/status", bearer(operator))["clients"] == 3, 5, "clients")
    r.publish("progress:ticks:run-1", b'{"step": "fetch"}')
    r.publish("ticks:binance:BTCUSDT", b'[{"trade_id": 7}]')
    r.publish("bars:binance:BTCUSDT", b'{"close": "2"}')
    assert [e.data["channel"] for e in seen_by_viewer.messages(2)] == [
        "ticks:binance:BTCUSDT",
        "bars:binance:BTCUSDT",
    ]
    assert [e.data["channel"] for e in sneaky.messages(1)] == ["ticks:binance:BTCUSDT"]
    assert [e.data["channel"] for e in seen_by_operator.messages(3)][0] == "progress:ticks:run-1"
    for reader in (seen_by_viewer, sneaky, seen_by_operator):
        reader.close()


def test_origin_and_host_allow_list(relay):
    value = bearer(token())
    foreign = {**value, "Origin": "https://evil.example.net"}
    assert request(relay, "/stream", foreign)[0] == 403
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(
            f"ws://127.0.0.1:{relay}/ws", timeout=5, header=value, origin="https://evil.example.net"
        )
    assert refused.value.status_code == 403
    # DNS rebinding: a page of evil.example.net resolving to this relay sends its own Host
    rebound = {**value, "Host": "evil.example.net", "Origin": "http://evil.example.net"}
    assert request(relay, "/stream", rebound)[0] == 403
    listed = {**value, "Host": "live.example.com", "Origin": ORIGIN}
    status, _, _ = request(relay, "/stream", listed)
    assert status == 200
    same = {**value, "Origin": f"http://127.0.0.1:{relay}"}  # the relay's own page
    assert request(relay, "/stream", same)[0] == 200
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{relay}/ws", timeout=5, header=value, origin=ORIGIN
    )
    ws.close()
    metrics = request(relay, "/metrics", value)[2].decode()
    refused_by = _samples(metrics)["ingest_live_connections_refused_total"]
    assert refused_by[("origin",)] >= 2 and refused_by[("host",)] >= 1


def test_a_token_expiring_ends_its_stream(relay):
    reader = SSEReader(relay, "channel=ticks:*", headers=bearer(token(ttl=2)))
    event = reader.next()
    while event.comment is not None:  # heartbeats until the expiry
        event = reader.next()
    assert event.event == "dropped" and "expired" in event.data["reason"]
    assert reader.next() is None
    reader.close()


def test_caps_per_user_patterns_and_clients(redis_url):
    operator = bearer(token("ops", "operator"))
    auth = LiveAuth(SECRET, [])
    limits = Limits(clients=4, per_user=2, subscriptions=2)
    with live_in_thread(redis_url, status_headers=operator, auth=auth, limits=limits) as port:
        alice = bearer(token("alice"))
        first = SSEReader(port, "channel=ticks:*", headers=alice)
        second = SSEReader(port, "channel=ticks:*", headers=alice)
        status, _, body = request(port, "/stream?channel=ticks:*", alice)
        assert status == 429 and b"per user" in body
        too_many = "&".join(f"channel=ticks:s{n}:*" for n in range(17))
        assert request(port, f"/stream?{too_many}", bearer(token("bob")))[0] == 400
        third = SSEReader(port, "channel=bars:*", headers=bearer(token("bob")))
        status, _, body = request(port, "/stream?channel=ticks:x:*", bearer(token("carl")))
        assert status == 503 and b"subscriptions" in body  # a third beside ticks:*, bars:*
        fourth = SSEReader(port, "channel=bars:*", headers=bearer(token("dan")))
        status, _, body = request(port, "/stream?channel=bars:*", bearer(token("eve")))
        assert status == 503 and b"4 clients" in body
        for reader in (first, second, third, fourth):
            assert reader.response.status == 200
            reader.close()
        wait_for(lambda: get_json(port, "/status", operator)["clients"] == 0, 5, "all gone")
        again = SSEReader(port, "channel=ticks:*", headers=alice)  # the caps count live ones
        assert again.response.status == 200
        again.close()


def test_metrics_count_clients_relayed_and_dropped(redis_url):
    r = redis.Redis.from_url(redis_url)
    operator = bearer(token("ops", "operator"))
    auth = LiveAuth(SECRET, [])
    with live_in_thread(redis_url, status_headers=operator, auth=auth, queue_size=5) as port:
        import socket

        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", port))
        slow.sendall(
            f"GET /stream?channel=ticks:* HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token('slow')}\r\n\r\n".encode()
        )  # never reads
        wait_for(lambda: get_json(port, "/status", operator)["clients"] == 1, 5, "the client")
        pad = "x" * 40_000
        for n in range(300):  # 12 MB: more than the socket buffers hold
            r.publish("ticks:binance:BTCUSDT", orjson.dumps([{"trade_id": n, "pad": pad}]))
        wait_for(lambda: get_json(port, "/status", operator)["dropped_clients"] == 1, 10, "drop")
        wait_for(lambda: get_json(port, "/status", operator)["relayed"] == 300, 10, "all relayed")
        samples = _samples(request(port, "/metrics", operator)[2].decode())
        slow.close()
    assert samples["ingest_live_messages_relayed_total"][()] == 300
    assert samples["ingest_live_clients_dropped_total"][()] == 1
    assert samples["ingest_live_messages_dropped_total"][()] >= 5
    assert samples["ingest_live_clients"][()] == 0
    assert samples["ingest_live_redis_connected"][()] == 1


def _samples(text: str) -> dict[str, dict[tuple, float]]:
    """Metric name -> {label values: value}, read with Prometheus' reference parser."""
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sample.labels.values())] = sample.value
    return out


def test_mint_token_and_the_cli(monkeypatch, capsys):
    from ingestion_pipelines.cli import main

    claims = jwt.decode(mint_token(SECRET, "alice", "operator", 60), SECRET, ["HS256"])
    assert claims["sub"] == "alice" and claims["role"] == "operator"
    assert 55 <= claims["exp"] - time.time() <= 61
    monkeypatch.setenv("INGEST_LIVE_JWT_SECRET", SECRET)
    assert main(["live", "token", "--sub", "bob", "--role", "viewer", "--ttl", "120"]) == 0
    printed = capsys.readouterr().out.strip()
    assert LiveAuth(SECRET).verify(printed).user == "bob"
    with pytest.raises(ValueError, match="at least 32"):
        LiveAuth("short")


def test_without_a_secret_the_relay_is_open_as_before(redis_url):
    with live_in_thread(redis_url) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/status")
        assert conn.getresponse().status == 200
        conn.close()
        reader = SSEReader(port, "channel=progress:*")
        assert reader.response.status == 200
        reader.close()
