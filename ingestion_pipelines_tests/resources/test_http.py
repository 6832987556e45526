"""The crawl HTTP client against a real local origin (and proxy) over real sockets."""

from __future__ import annotations

import json
import pickle
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import orjson
import pytest
from loguru import logger

from ingestion_pipelines.core import redis_client as redis_module
from ingestion_pipelines.core.errors import IngestError, is_transient
from ingestion_pipelines.http_client import resource as http_module
from ingestion_pipelines.http_client.errors import HttpFetchError
from ingestion_pipelines.http_client.resource import HttpClientResource
from ingestion_pipelines.http_client.results import HttpResult
from ingestion_pipelines.http_client.validators import MemoryValidatorStore
from ingestion_pipelines.resources.rate_limit import LocalRateLimiter, RedisRateLimiter
from ingestion_pipelines_tests.fakes.http_origin import (
    ForwardingProxy,
    HttpOrigin,
    Reply,
    conditional_handler,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FAST = {"backoff_base_s": 0.01, "backoff_max_s": 0.05}


@pytest.fixture
def origin():
    with HttpOrigin() as server:
        yield server


@pytest.fixture
def client() -> HttpClientResource:
    return HttpClientResource(redis_url="")


@pytest.fixture
def log_lines():
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), format="{message} | {extra}", level="DEBUG")
    yield lines
    logger.remove(sink)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_rate_held(timestamps: list[float], rate_per_s: float, tolerance_s: float) -> None:
    ts = sorted(timestamps)
    interval = 1.0 / rate_per_s
    for i in range(len(ts)):
        for j in range(i + 1, len(ts)):
            assert ts[j] - ts[i] >= (j - i) * interval - tolerance_s, (
                f"{j - i + 1} requests within {ts[j] - ts[i]:.3f}s exceed {rate_per_s}/s"
            )


# --------------------------------------------------------------------------- basics


def test_get_post_json_text_and_headers(origin, client):
    origin.set(
        "/api",
        Reply(200, body='{"name": "Quỹ Đầu tư"}', headers={"Content-Type": "application/json"}),
    )
    with client.session("fmarket_funds", **FAST) as session:
        got = session.get(origin.url("/api"), params={"page": 2, "q": "a b"})
        session.post(origin.url("/api"), json={"types": ["NEW_FUND"], "page": 1})
    assert isinstance(got, HttpResult)
    assert got.status == 200 and got.ok and not got.not_modified
    assert got.json() == {"name": "Quỹ Đầu tư"}
    assert "Quỹ Đầu tư" in got.text
    assert got.headers["content-type"] == "application/json"
    assert got.elapsed_s > 0 and got.attempts == 1
    first, second = origin.requests_for("/api")
    assert first.method == "GET" and first.path == "/api?page=2&q=a+b"
    assert "chrome" in first.headers["user-agent"].lower()  # impersonating a browser
    assert second.method == "POST"
    assert orjson.loads(second.body) == {"types": ["NEW_FUND"], "page": 1}
    assert second.headers["content-type"].startswith("application/json")
    assert session.stats.requests == 2
    assert session.stats.requests_by_status == {"200": 2}
    assert session.stats.bytes == 2 * len('{"name": "Quỹ Đầu tư"}'.encode())


def test_no_impersonation_sends_fallback_user_agent_and_custom_headers(origin):
    origin.set("/ua", Reply(200, body=b"ok"))
    client = HttpClientResource(redis_url="", user_agent_fallback="ingest-test/1.0")
    with client.session("w", impersonate=None, headers={"X-Trace": "1"}) as session:
        session.get(origin.url("/ua"), headers={"Accept": "text/plain"})
    (seen,) = origin.requests_for("/ua")
    assert seen.headers["user-agent"] == "ingest-test/1.0"
    assert seen.headers["x-trace"] == "1" and seen.headers["accept"] == "text/plain"


# --------------------------------------------------------------------------- retries


def test_retries_503_then_succeeds(origin, client, log_lines):
    origin.set("/flaky", Reply(503), Reply(502), Reply(200, body=b"finally"))
    with client.session("fmarket_nav", **FAST) as session:
        result = session.get(origin.url("/flaky"))
    assert result.status == 200 and result.content == b"finally" and result.attempts == 3
    assert len(origin.requests_for("/flaky")) == 3
    assert session.stats.retries == 2 and session.stats.requests == 3
    assert session.stats.requests_by_status == {"503": 1, "502": 1, "200": 1}
    retry_logs = [line for line in log_lines if "retrying" in line]
    assert len(retry_logs) == 2
    assert "HTTP 503 Service Unavailable" in retry_logs[0]
    assert "'worker_id': 'fmarket_nav'" in retry_logs[0]


def test_gives_up_after_max_retries_with_clear_message(origin, client):
    origin.set("/down", Reply(503))
    with (
        client.session("fmarket_nav", max_retries=2, **FAST) as session,
        pytest.raises(HttpFetchError) as caught,
    ):
        session.post(origin.url("/down"), json={"productId": 1})
    error = caught.value
    assert str(error) == (
        f"fmarket_nav: POST {origin.url('/down')} failed after 3 attempts: "
        "HTTP 503 Service Unavailable"
    )
    assert error.status == 503 and error.attempts == 3 and error.worker_id == "fmarket_nav"
    assert isinstance(error, IngestError) and is_transient(error)  # a later run may succeed
    assert len(origin.requests_for("/down")) == 3


def test_429_honours_retry_after_seconds_beyond_backoff_cap(origin, client):
    origin.set("/limited", Reply(429, headers={"Retry-After": "1"}), Reply(200, body=b"ok"))
    with client.session("coingecko_markets", backoff_base_s=0.01, backoff_max_s=0.05) as session:
        result = session.get(origin.url("/limited"))
    assert result.status == 200
    first, second = origin.requests_for("/limited")
    assert second.at - first.at >= 1.0
    assert session.stats.requests_by_status == {"429": 1, "200": 1}


def test_retry_after_over_cap_fails_at_once(origin, client):
    origin.set("/ban", Reply(429, headers={"Retry-After": "3600"}))
    with client.session("coingecko_markets", **FAST) as session:
        started = time.monotonic()
        with pytest.raises(HttpFetchError) as caught:
            session.get(origin.url("/ban"))
    assert time.monotonic() - started < 1
    assert "HTTP 429 Too Many Requests" in str(caught.value)
    assert "Retry-After 3600 s" in str(caught.value)
    assert len(origin.requests_for("/ban")) == 1


def test_404_fails_at_once_naming_worker_and_url(origin, client):
    with client.session("cafef_news", **FAST) as session:
        started = time.monotonic()
        with pytest.raises(HttpFetchError) as caught:
            session.get(origin.url("/missing.rss"))
    assert time.monotonic() - started < 1
    assert str(caught.value) == (
        f"cafef_news: GET {origin.url('/missing.rss')} failed after 1 attempt: HTTP 404 Not Found"
    )
    assert caught.value.status == 404
    assert not is_transient(caught.value)  # retrying the run would get the same 404
    assert len(origin.requests_for("/missing.rss")) == 1
    assert session.stats.retries == 0


def test_accept_statuses_returns_result_instead_of_raising(origin, client):
    origin.set("/gone", Reply(404, body=b"nothing"))
    with client.session("w", **FAST) as session:
        result = session.get(origin.url("/gone"), accept_statuses={404})
    assert result.status == 404 and not result.ok and result.content == b"nothing"


def test_connection_refused_retries_then_fails_redacted(client, log_lines):
    port = _free_port()  # nothing listens there
    url = f"http://crawler:tok3n-S3CRET@127.0.0.1:{port}/feed?api_key=k3y-S3CRET&page=1"
    with (
        client.session("vnexpress_news", max_retries=2, **FAST) as session,
        pytest.raises(HttpFetchError) as caught,
    ):
        session.get(url)
    message = str(caught.value)
    assert message.startswith(
        f"vnexpress_news: GET http://crawler:***@127.0.0.1:{port}/feed?api_key=***&page=1 "
        "failed after 3 attempts: ConnectionError"
    )
    assert "onnect" in message  # curl's "Could not connect" / "Failed to connect"
    assert session.stats.requests_by_status == {"error": 3}
    assert session.stats.retries == 2
    everything = message + "\n".join(log_lines) + json.dumps(session.stats.as_metadata())
    assert "S3CRET" not in everything
    assert sum("retrying" in line for line in log_lines) == 2


def test_timeout_is_retried(origin, client):
    origin.set("/slow", Reply(200, body=b"late", delay_s=1.0), Reply(200, body=b"fast"))
    with client.session("w", timeout_s=0.3, **FAST) as session:
        result = session.get(origin.url("/slow"))
    assert result.content == b"fast"
    assert session.stats.requests_by_status == {"error": 1, "200": 1}


# --------------------------------------------------------------------------- conditional GET


def test_conditional_get_sends_validators_and_reports_not_modified(origin, client):
    etag, modified = '"v1-abc"', "Wed, 21 Oct 2015 07:28:00 GMT"
    origin.set_handler("/rss", conditional_handler(b"<rss/>", etag=etag, last_modified=modified))
    store = MemoryValidatorStore()
    with client.session("vnexpress_news", validator_store=store, **FAST) as session:
        first = session.get(origin.url("/rss"), conditional=True)
        second = session.get(origin.url("/rss"), conditional=True)
        unconditional = session.get(origin.url("/rss"))
    assert first.status == 200 and first.content == b"<rss/>" and not first.not_modified
    assert store.get(origin.url("/rss")) == (etag, modified)
    assert second.not_modified and second.status == 304 and second.content == b""
    assert unconditional.status == 200
    seen = origin.requests_for("/rss")
    assert "if-none-match" not in seen[0].headers
    assert seen[1].headers["if-none-match"] == etag
    assert seen[1].headers["if-modified-since"] == modified
    assert "if-none-match" not in seen[2].headers
    assert session.stats.not_modified == 1
    assert session.stats.requests_by_status == {"200": 2, "304": 1}


def test_conditional_get_with_last_modified_only(origin, client):
    modified = "Thu, 01 Jan 2026 00:00:00 GMT"
    origin.set_handler("/feed", conditional_handler(b"data", last_modified=modified))
    store = MemoryValidatorStore()
    with client.session("cafef_news", validator_store=store) as session:
        assert not session.get(origin.url("/feed"), conditional=True).not_modified
        assert session.get(origin.url("/feed"), conditional=True).not_modified
    assert store.get(origin.url("/feed")) == (None, modified)
    assert origin.requests_for("/feed")[1].headers["if-modified-since"] == modified


# --------------------------------------------------------------------------- size cap


def test_size_cap_by_content_length_and_by_body(origin, client):
    big = b"x" * 200_000
    origin.set("/declared", Reply(200, body=big))
    origin.set("/undeclared", Reply(200, body=big, send_content_length=False))
    origin.set("/small", Reply(200, body=b"y" * 1000))
    with client.session("w", max_response_bytes=100_000, **FAST) as session:
        for path in ("/declared", "/undeclared"):
            with pytest.raises(HttpFetchError) as caught:
                session.get(origin.url(path))
            assert "exceeds max_response_bytes=100000" in str(caught.value)
            assert len(origin.requests_for(path)) == 1  # not retried
        assert session.get(origin.url("/small")).content == b"y" * 1000
    assert session.stats.bytes <= 100_000 + 1000


# --------------------------------------------------------------------------- rate limit


def test_rate_limit_5_per_second_measured_at_server(origin, client):
    origin.set("/tick", Reply(200, body=b"."))
    with client.session("w", rate_limit_per_s=5) as session:
        for _ in range(6):
            session.get(origin.url("/tick"))
    stamps = [r.at for r in origin.requests_for("/tick")]
    assert len(stamps) == 6
    assert_rate_held(stamps, 5, tolerance_s=0.03)
    assert stamps[-1] - stamps[0] >= 1.0 - 0.03
    assert session.stats.rate_limit_wait_s > 0.8


_CHILD = """
import json, sys, time
from ingestion_pipelines.http_client.resource import HttpClientResource

redis_url, url, start_at, count = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
client = HttpClientResource(redis_url=redis_url)
with client.session("rate_child", rate_limit_per_s=10, max_retries=0) as session:
    client.rate_limiter().acquire("warm.example", None)
    while time.time() < start_at:
        time.sleep(0.001)
    for _ in range(count):
        session.get(url)
    print(json.dumps(session.stats.as_metadata()))
"""


def test_redis_rate_limit_holds_across_two_processes(origin, redis_url):
    origin.set("/shared", Reply(200, body=b"."))
    per_process = 6
    start_at = time.time() + 2.5
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CHILD,
                redis_url,
                origin.url("/shared"),
                str(start_at),
                str(per_process),
            ],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["http_requests"] == per_process
    stamps = [r.at for r in origin.requests_for("/shared")]
    assert len(stamps) == 2 * per_process
    assert_rate_held(stamps, 10, tolerance_s=0.04)
    assert max(stamps) - min(stamps) >= (2 * per_process - 1) / 10 - 0.04


def test_resource_picks_limiter_from_redis_url(redis_url, monkeypatch):
    assert isinstance(HttpClientResource(redis_url="").rate_limiter(), LocalRateLimiter)
    assert isinstance(HttpClientResource(redis_url=redis_url).rate_limiter(), RedisRateLimiter)
    # None: INGEST_REDIS_URL read when used (not at import or construction)
    resource = HttpClientResource()
    assert resource.resolved_redis_url() is None
    monkeypatch.setenv("INGEST_REDIS_URL", redis_url)
    assert resource.resolved_redis_url() == redis_url
    assert isinstance(resource.rate_limiter(), RedisRateLimiter)
    assert HttpClientResource(redis_url_env_var=None).resolved_redis_url() is None


def test_no_redis_is_logged_once(monkeypatch, log_lines):
    monkeypatch.setattr(http_module, "_limiters", {})
    monkeypatch.setattr(http_module, "_local_warning_logged", False)
    monkeypatch.setattr(redis_module, "_said", threading.Event())  # said by an earlier test
    for _ in range(3):
        HttpClientResource(redis_url="").rate_limiter()
    assert sum("per process only" in line for line in log_lines) == 1


# --------------------------------------------------------------------------- proxy


def test_proxy_forwards_with_basic_auth(origin, client):
    origin.set("/via-proxy", Reply(200, body=b"proxied"))
    with ForwardingProxy("crawler", "pr0xy-PASSWORD") as proxy:
        with client.session("w", proxy=proxy.proxy_url(), **FAST) as session:
            result = session.get(origin.url("/via-proxy"))
        assert result.content == b"proxied"
        assert result.headers.get("via") == "1.1 fake-proxy"
        assert proxy.forwarded == [origin.url("/via-proxy")]
        assert proxy.seen_auth == [proxy.expected_auth]
    assert "proxy-authorization" not in origin.requests_for("/via-proxy")[0].headers


def test_proxy_credentials_never_leak(origin, client, log_lines):
    origin.set("/via-proxy", Reply(503))
    with ForwardingProxy("crawler", "right-PASSWORD") as proxy:
        wrong = proxy.proxy_url(password="wr0ng-PASSWORD")
        with (
            client.session("w", proxy=wrong, **FAST) as session,
            pytest.raises(HttpFetchError) as rejected,
        ):
            session.get(origin.url("/via-proxy"))
        assert rejected.value.status == 407 and proxy.rejected == 1  # 4xx: no retry
        assert "HTTP 407 Proxy Authentication Required" in str(rejected.value)
        assert f"http://crawler:***@127.0.0.1:{proxy.port}" in str(rejected.value)

        with (
            client.session("w", proxy=proxy.proxy_url(), max_retries=1, **FAST) as session,
            pytest.raises(HttpFetchError) as upstream,
        ):
            session.get(origin.url("/via-proxy"))
        assert upstream.value.status == 503
    dead_proxy = f"http://crawler:dead-PASSWORD@127.0.0.1:{_free_port()}"
    with (
        client.session("w", proxy=dead_proxy, max_retries=1, **FAST) as session,
        pytest.raises(HttpFetchError) as unreachable,
    ):
        session.get(origin.url("/via-proxy"))
    assert unreachable.value.status is None
    texts = [str(rejected.value), str(upstream.value), str(unreachable.value), *log_lines]
    texts += [repr(e.value.__dict__) for e in (rejected, upstream, unreachable)]
    assert not any("PASSWORD" in text for text in texts), texts


# --------------------------------------------------------------------------- misc


def test_fetch_error_pickles():
    error = HttpFetchError("w", "http://u:p4ssword@h/x", "boom", 500, method="GET", attempts=2)
    clone = pickle.loads(pickle.dumps(error))
    assert str(clone) == str(error) == "w: GET http://u:***@h/x failed after 2 attempts: boom"
    assert clone.status == 500


def test_resource_in_dagster_materialization(origin):
    origin.set("/data", Reply(200, body=b'{"v": 1}'))
    url = origin.url("/data")

    @dg.asset
    def probe(http: HttpClientResource) -> dg.MaterializeResult:
        with http.session("probe", max_retries=0) as session:
            value = session.get(url).json()["v"]
        return dg.MaterializeResult(metadata={"v": value, **session.stats.as_metadata()})

    result = dg.materialize([probe], resources={"http": HttpClientResource(redis_url="")})
    assert result.success
    (materialization,) = result.asset_materializations_for_node("probe")
    metadata = materialization.metadata
    assert metadata["v"].value == 1
    assert metadata["http_requests"].value == 1
    assert metadata["http_requests_by_status"].value == {"200": 1}
