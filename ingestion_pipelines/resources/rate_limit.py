"""Per-host request rate limits: shared through Redis, or per process.

Both limiters space requests to one host at least ``1 / rate_per_s`` seconds apart
(a "next allowed time" slot reservation, i.e. GCRA with no burst). The first request
to an idle host goes through at once. ``rate_per_s`` may be below 1 (one request every
few seconds); ``None`` or ``0`` means unlimited. ``pause(host, s)`` (a 429 or a
``Retry-After``) holds every request to that host for ``s``, rate limited or not, in every
process sharing the limiter.

``RedisRateLimiter`` reserves the slot in one atomic Lua script that reads the clock
with Redis ``TIME``, so every process (and every machine) sharing the Redis agrees on
the schedule whatever its own clock says. ``LocalRateLimiter`` does the same inside one
process with a lock and the monotonic clock.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from loguru import logger

from ingestion_pipelines.redaction import redact

__all__ = [
    "LocalRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "rate_limit_host",
]

# After a Redis error, the per-process fallback is used for this long before Redis is tried again.
REDIS_RETRY_AFTER_S = 30.0

# KEYS[1] = the host's next free slot, KEYS[2] = the end of the host's pause (a 429 / Retry-After);
# ARGV[1] = interval between requests in microseconds (0: unlimited, only a pause holds it);
# ARGV[2] = 1 to claim the slot only if it is free now (else nothing is reserved), 0 to reserve
# the next slot whenever it is. Returns how many microseconds the caller must wait (0 when a
# claim succeeded).
_RESERVE_SLOT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local slot = now
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > slot then
  slot = paused
end
if interval > 0 then
  local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
  if nxt > slot then
    slot = nxt
  end
end
if ARGV[2] == '1' and slot > now then
  return math.max(1, math.floor(slot - now))
end
if interval > 0 then
  local new_next = slot + interval
  local ttl_ms = math.floor((new_next - now) / 1000) + 1000
  redis.call('SET', KEYS[1], string.format('%.0f', new_next), 'PX', ttl_ms)
end
return math.floor(slot - now)
"""

# KEYS[1] = the end of the host's pause; ARGV[1] = pause in microseconds from now (kept if later).
_PAUSE_HOST_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local resume = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if resume > current then
  local ttl_ms = math.floor((resume - now) / 1000) + 1000
  redis.call('SET', KEYS[1], string.format('%.0f', resume), 'PX', ttl_ms)
end
return 0
"""


def rate_limit_host(url_or_host: str) -> str:
    """The key a URL is rate limited under: lower-case host, with the port when one is given."""
    from urllib.parse import urlsplit

    if "://" not in url_or_host:
        return url_or_host.lower()
    parts = urlsplit(url_or_host)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


# Slots are spaced this much wider than 1 / rate: the jitter between reserving a slot and the
# request reaching the server (thread wake-up, a busy machine) must never show the server more
# than rate_per_s.
SPACING_MARGIN = 1.02


def _interval_s(rate_per_s: float | None) -> float | None:
    if rate_per_s is None:
        return None
    rate = float(rate_per_s)
    if rate <= 0:
        return None
    return SPACING_MARGIN / rate


def _claim_when_free(limiter: Any, host: str, rate_per_s: float | None) -> float:
    """Sleep until the host's next slot, then claim it; when another thread or process took it
    meanwhile, wait for the next one. A slot is taken at the moment of sending, never ahead: a
    sender woken late pushes the schedule back instead of bunching with the punctual ones, so
    the server never sees more than the rate in any second. Returns the seconds waited."""
    waited = 0.0
    while (wait := limiter.reserve(host, rate_per_s, claim=True)) > 0:
        time.sleep(wait)
        waited += wait
    return waited


class RateLimiter(Protocol):
    def acquire(self, host: str, rate_per_s: float | None) -> float:
        """Block until a request to ``host`` is allowed; return the seconds waited."""
        ...

    def pause(self, host: str, seconds: float) -> None:
        """Hold every request to ``host`` for ``seconds`` (a 429 / ``Retry-After``)."""
        ...


class LocalRateLimiter:
    """Per-host spacing of requests inside one process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}
        self._paused: dict[str, float] = {}

    def reserve(self, host: str, rate_per_s: float | None, *, claim: bool = False) -> float:
        """Reserve the next slot for ``host`` and return the seconds until it (no sleeping).
        ``claim=True``: take the slot only if it is free now (then 0), else reserve nothing."""
        interval = _interval_s(rate_per_s)
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._paused.get(host, 0.0))
            if interval is not None:
                slot = max(slot, self._next.get(host, 0.0))
            if claim and slot > now:
                return slot - now
            if interval is not None:
                self._next[host] = slot + interval
            return slot - now

    def pause(self, host: str, seconds: float) -> None:
        with self._lock:
            resume = time.monotonic() + max(0.0, seconds)
            self._paused[host] = max(self._paused.get(host, 0.0), resume)

    def acquire(self, host: str, rate_per_s: float | None) -> float:
        return _claim_when_free(self, host, rate_per_s)


class RedisRateLimiter:
    """Per-host spacing of requests shared by every process using the same Redis."""

    def __init__(self, redis_client: Any, prefix: str = "ratelimit:") -> None:
        self._prefix = prefix
        self._script = redis_client.register_script(_RESERVE_SLOT_LUA)
        self._pause_script = redis_client.register_script(_PAUSE_HOST_LUA)
        self._fallback = LocalRateLimiter()
        self._down_until = 0.0  # while Redis is failing, don't wait on it for every request
        self._warned = False

    def key(self, host: str) -> str:
        return f"{self._prefix}{host}"

    def pause_key(self, host: str) -> str:
        return f"{self._prefix}pause:{host}"

    def reserve(self, host: str, rate_per_s: float | None, *, claim: bool = False) -> float:
        """Atomically reserve the next slot for ``host``; return the seconds until it.
        ``claim=True``: take the slot only if it is free now (then 0), else reserve nothing."""
        interval = _interval_s(rate_per_s)
        if time.monotonic() < self._down_until:
            return self._fallback.reserve(host, rate_per_s, claim=claim)
        interval_us = 0 if interval is None else max(1, round(interval * 1_000_000))
        try:
            wait_us = self._script(
                keys=[self.key(host), self.pause_key(host)], args=[interval_us, int(claim)]
            )
        except Exception as exc:  # Redis down: keep crawling, limited per process only
            self._redis_failed(exc)
            return self._fallback.reserve(host, rate_per_s, claim=claim)
        if self._warned:
            self._warned = False
            logger.info("Redis rate limiter available again")
        return max(0.0, int(wait_us) / 1_000_000)

    def pause(self, host: str, seconds: float) -> None:
        """Hold ``host`` for every process sharing the Redis (and this one's fallback)."""
        self._fallback.pause(host, seconds)
        if time.monotonic() < self._down_until:
            return
        try:
            pause_us = max(0, round(seconds * 1_000_000))
            self._pause_script(keys=[self.pause_key(host)], args=[pause_us])
        except Exception as exc:  # noqa: BLE001 - the fallback holds this process at least
            self._redis_failed(exc)

    def _redis_failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + REDIS_RETRY_AFTER_S
        if not self._warned:
            self._warned = True
            logger.warning(
                "Redis rate limiter unavailable ({}); limiting per process only "
                "(Redis is tried again every {:.0f} s)",
                redact(f"{type(exc).__name__}: {exc}"),
                REDIS_RETRY_AFTER_S,
            )

    def acquire(self, host: str, rate_per_s: float | None) -> float:
        return _claim_when_free(self, host, rate_per_s)
