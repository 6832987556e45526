"""Per-host rate limiters: in-process and shared through a real Redis across OS processes.

Redis comes from the test bed's ``redis_url`` fixture (conftest.py).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

from ingestion_pipelines.resources.rate_limit import (
    SPACING_MARGIN,
    LocalRateLimiter,
    RedisRateLimiter,
    rate_limit_host,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- helpers


def assert_rate_held(timestamps: list[float], rate_per_s: float, tolerance_s: float) -> None:
    """No k+1 consecutive events closer together than k intervals (minus a jitter tolerance)."""
    ts = sorted(timestamps)
    interval = 1.0 / rate_per_s
    for i in range(len(ts)):
        for j in range(i + 1, len(ts)):
            span = ts[j] - ts[i]
            assert span >= (j - i) * interval - tolerance_s, (
                f"{j - i + 1} events within {span:.3f}s exceed {rate_per_s}/s: {ts}"
            )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- local


def test_rate_limit_host_keys():
    assert rate_limit_host("https://API.fmarket.vn/res/products") == "api.fmarket.vn"
    assert rate_limit_host("http://user:pw@127.0.0.1:8080/x?y=1") == "127.0.0.1:8080"
    assert rate_limit_host("example.com") == "example.com"


def test_local_first_request_immediate_then_spaced():
    limiter = LocalRateLimiter()
    started = time.monotonic()
    stamps = []
    for _ in range(5):
        limiter.acquire("a.example", 20)
        stamps.append(time.monotonic())
    assert stamps[0] - started < 0.02
    assert_rate_held(stamps, 20, tolerance_s=0.01)
    assert stamps[-1] - stamps[0] >= 4 / 20 - 0.01


def test_local_unlimited_and_independent_hosts():
    limiter = LocalRateLimiter()
    assert all(limiter.acquire("a.example", None) == 0 for _ in range(50))
    assert all(limiter.acquire("a.example", 0) == 0 for _ in range(50))
    assert limiter.acquire("b.example", 1) == 0
    assert limiter.acquire("c.example", 1) == 0  # another host is not held back by b


def test_local_rate_below_one_per_second():
    limiter = LocalRateLimiter()
    assert limiter.reserve("slow.example", 0.5) == 0
    second = limiter.reserve("slow.example", 0.5)
    assert 1.9 < second <= 2.0 * SPACING_MARGIN
    third = limiter.reserve("slow.example", 0.5)
    assert 3.9 < third <= 4.0 * SPACING_MARGIN


def test_local_limit_holds_across_threads():
    limiter = LocalRateLimiter()
    stamps: list[float] = []
    lock = threading.Lock()

    def work():
        for _ in range(4):
            limiter.acquire("threads.example", 25)
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(stamps) == 12
    assert_rate_held(stamps, 25, tolerance_s=0.015)


# --------------------------------------------------------------------------- redis


def test_redis_first_request_immediate_then_spaced(redis_url):
    client = redis.Redis.from_url(redis_url)
    first, second = RedisRateLimiter(client), RedisRateLimiter(client)
    assert first.acquire("api.example.com", 10) == 0
    stamps = [time.monotonic()]
    for limiter in (second, first, second):
        waited = limiter.acquire("api.example.com", 10)
        assert waited > 0.05
        stamps.append(time.monotonic())
    assert_rate_held(stamps, 10, tolerance_s=0.02)
    # unlimited and other hosts are not held back
    assert first.acquire("api.example.com", None) == 0
    assert second.acquire("other.example.com", 10) == 0


def test_redis_rate_below_one_and_key_expiry(redis_url):
    client = redis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(client, prefix="test-rl:")
    assert limiter.reserve("slow.example", 0.25) == 0
    second = limiter.reserve("slow.example", 0.25)
    assert 3.9 < second <= 4.0 * SPACING_MARGIN
    ttl_ms = client.pttl("test-rl:slow.example")
    assert 0 < ttl_ms <= 8_000 * SPACING_MARGIN + 1_000  # the key expires once the host is idle


def test_redis_unreachable_falls_back_to_local():
    client = redis.Redis(host="127.0.0.1", port=_free_port(), retry=None)
    limiter = RedisRateLimiter(client)
    assert limiter.acquire("x.example", 20) == 0
    assert limiter.acquire("x.example", 20) > 0.03


_CHILD = """
import json, sys, time
import redis
from ingestion_pipelines.resources.rate_limit import RedisRateLimiter

url, start_at, count, rate = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
limiter = RedisRateLimiter(redis.Redis.from_url(url))
limiter.acquire("warm.example", None)
while time.time() < start_at:
    time.sleep(0.001)
stamps = []
for _ in range(count):
    limiter.acquire("shared.example.com", rate)
    stamps.append(time.time())
print(json.dumps(stamps))
"""


def test_redis_limit_holds_across_two_processes(redis_url):
    rate, per_process = 10.0, 6
    start_at = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, redis_url, str(start_at), str(per_process), str(rate)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    combined = results[0] + results[1]
    assert len(combined) == 2 * per_process
    # both processes really ran at the same time (the other one got slots in between)
    assert min(results[1]) < max(results[0]) and min(results[0]) < max(results[1])
    assert_rate_held(combined, rate, tolerance_s=0.04)
    assert max(combined) - min(combined) >= (2 * per_process - 1) / rate - 0.04


def test_a_pause_holds_the_host_for_every_process_sharing_redis(redis_url):
    """A 429's Retry-After seen by one process holds the other's requests to that host, rate
    limited or not, and leaves other hosts alone."""
    first = RedisRateLimiter(redis.Redis.from_url(redis_url), prefix="pause-test:")
    other_process = RedisRateLimiter(redis.Redis.from_url(redis_url), prefix="pause-test:")
    first.pause("api.example.com", 0.6)
    assert other_process.acquire("other.example.com", None) == 0
    started = time.monotonic()
    waited = other_process.acquire("api.example.com", None)
    assert 0.45 < waited <= 0.6 and time.monotonic() - started >= 0.45
    first.pause("api.example.com", 0.3)
    assert other_process.acquire("api.example.com", 100) < 0.35


def test_a_local_pause_holds_the_host():
    limiter = LocalRateLimiter()
    limiter.pause("api.example.com", 0.3)
    assert limiter.reserve("other.example.com", None) == 0
    assert 0.25 < limiter.reserve("api.example.com", None) <= 0.3
    assert 0.25 < limiter.reserve("api.example.com", 1000) <= 0.3


def test_a_late_sender_pushes_the_next_send_back(redis_url):
    """Two slots reserved 0.1 s apart, the first sent late: the second still waits an interval
    after the first's actual send (no two sends closer than the rate), locally and through Redis."""
    shared = RedisRateLimiter(redis.Redis.from_url(redis_url), prefix="late-test:")
    for limiter in (LocalRateLimiter(), shared):
        assert limiter.reserve("api.example.com", 10) == 0
        assert limiter.reserve("api.example.com", 10) > 0.09
        time.sleep(0.15)  # both slots are due; the first sender woke late
        assert limiter.mark_sent("api.example.com", 10) == 0
        wait = limiter.mark_sent("api.example.com", 10)
        assert 0.09 < wait <= 0.1 * SPACING_MARGIN
