"""The demo's live page: a private redis-server on a free loopback port with a password, the
sidecar's channels relayed by `ingest live`, both stopped with the demo; without redis-server,
the reason instead of a page."""

from __future__ import annotations

import os
import socket
from contextlib import ExitStack

import redis

from ingestion_pipelines.demo import live as demo_live
from ingestion_pipelines.demo import run as demo
from ingestion_pipelines_tests.live.helpers import SSEReader, status_or_none, wait_for
from ingestion_pipelines_tests.testbed.base import free_port


def _closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_the_demo_starts_a_private_redis_and_the_live_page():
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_REDIS")}
    live_port = free_port()
    with ExitStack() as stack:
        live = demo_live.start_live_page(stack, env, live_port)
        assert live.url == f"http://127.0.0.1:{live_port}/"
        url = env["INGEST_REDIS_URL"]  # what the sidecar and the relay are given
        assert url.startswith("redis://:") and "@127.0.0.1:" in url
        redis_port = int(url.rsplit(":", 1)[1].split("/")[0])
        anonymous = redis.Redis(host="127.0.0.1", port=redis_port)
        try:
            anonymous.ping()
            raise AssertionError("the demo's Redis answered without its password")
        except redis.AuthenticationError:
            pass
        except redis.ResponseError as exc:  # NOAUTH
            assert "NOAUTH" in str(exc)
        finally:
            anonymous.close()
        wait_for(lambda: (status_or_none(live_port) or {}).get("redis") == "connected", 30, "live")
        reader = SSEReader(live_port, "channel=ticks:*")
        wait_for(lambda: status_or_none(live_port)["clients"] == 1, 5, "the page's stream")
        redis.Redis.from_url(url).publish("ticks:binance:BTCUSDT", b'[{"trade_id": 1}]')
        assert reader.messages(1)[0].data["data"] == [{"trade_id": 1}]
        reader.close()
        line = demo._live_line(live, env)
        assert line.startswith(f"Live page at http://127.0.0.1:{live_port}/")
    wait_for(lambda: _closed(live_port) and _closed(redis_port), 15, "both stopped")


def test_without_redis_server_the_demo_says_why_there_is_no_live_page(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(demo_live, "SEARCH_DIRS", ())
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_REDIS")}
    with ExitStack() as stack:
        live = demo_live.start_live_page(stack, env, free_port())
    assert live.url is None and "redis-server is not installed" in live.why_not
    assert "INGEST_REDIS_URL" not in env
    assert demo._live_line(live, env).startswith("No live page: redis-server is not installed")
