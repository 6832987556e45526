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

from ingestion_pipelines.core.redaction import redact

__all__ = [
    "LocalRateLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "rate_limit_host",
]

# After a Redis error, the per-process fallback is used for this long before Redis is tried again.
REDIS_RETRY_AFTER_S = 30.0

# KEYS[1] = the host's next free slot, KEYS[2] = the end of the host's pause (a 429 / Retry-After);
# ARGV[1] = interval between requests in microseconds (0: unlimited, only a pause holds it).
# Returns how many microseconds the caller must wait before its slot.
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
if interval > 0 then
  local new_next = slot + interval
  local ttl_ms = math.floor((new_next - now) / 1000) + 1000
  redis.call('SET', KEYS[1], string.format('%.0f', new_next), 'PX', ttl_ms)
end
return math.floor(slot - now)
"""

# KEYS[1] = when the host was last sent a request, KEYS[2] = the end of its pause; ARGV[1] = the
# interval in microseconds. At the moment of sending: 0 (and the send is recorded) when the last
# send is at least an interval ago and no pause holds, else the microseconds still to wait.
_MARK_SENT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local ready = tonumber(redis.call('GET', KEYS[1]) or '0') + interval
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > ready then
  ready = paused
end
if ready > now then
  return math.max(1, math.floor(ready - now))
end
redis.call('SET', KEYS[1], string.format('%.0f', now), 'PX', math.floor(interval / 1000) + 1000)
return 0
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
SPACING_MARGIN = 1.05


def _interval_s(rate_per_s: float | None) -> float | None:
    if rate_per_s is None:
        return None
    rate = float(rate_per_s)
    if rate <= 0:
        return None
    return SPACING_MARGIN / rate


def _acquire(limiter: Any, host: str, rate_per_s: float | None) -> float:
    """Sleep until the reserved slot (slots are handed out in order, so every thread and process
    gets its turn), then, at the moment of sending, check that the host's last send is an
    interval ago: a sender woken late pushes the next ones back instead of bunching with the
    punctual ones, so the server never sees more than the rate in any second. Returns the
    seconds waited."""
    waited = limiter.reserve(host, rate_per_s)
    if waited > 0:
        time.sleep(waited)
    if _interval_s(rate_per_s) is None:
        return waited
    while (wait := limiter.mark_sent(host, rate_per_s)) > 0:
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
        self._sent: dict[str, float] = {}
        self._paused: dict[str, float] = {}

    def reserve(self, host: str, rate_per_s: float | None) -> float:
        """Reserve the next slot for ``host`` and return the seconds until it (no sleeping)."""
        interval = _interval_s(rate_per_s)
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._paused.get(host, 0.0))
            if interval is not None:
                slot = max(slot, self._next.get(host, 0.0))
                self._next[host] = slot + interval
            return slot - now

    def mark_sent(self, host: str, rate_per_s: float | None) -> float:
        """0 and the send recorded when the last send to ``host`` is an interval ago (and no
        pause holds), else the seconds still to wait."""
        interval = _interval_s(rate_per_s) or 0.0
        with self._lock:
            now = time.monotonic()
            ready = max(self._sent.get(host, -interval) + interval, self._paused.get(host, 0.0))
            if ready > now:
                return ready - now
            self._sent[host] = now
            return 0.0

    def pause(self, host: str, seconds: float) -> None:
        with self._lock:
            resume = time.monotonic() + max(0.0, seconds)
            self._paused[host] = max(self._paused.get(host, 0.0), resume)

    def acquire(self, host: str, rate_per_s: float | None) -> float:
        return _acquire(self, host, rate_per_s)


class RedisRateLimiter:
    """Per-host spacing of requests shared by every process using the same Redis."""

    def __init__(self, redis_client: Any, prefix: str = "ratelimit:") -> None:
        self._prefix = prefix
        self._script = redis_client.register_script(_RESERVE_SLOT_LUA)
        self._pause_script = redis_client.register_script(_PAUSE_HOST_LUA)
        self._mark_sent_script = redis_client.register_script(_MARK_SENT_LUA)
        self._fallback = LocalRateLimiter()
        self._down_until = 0.0  # while Redis is failing, don't wait on it for every request
        self._warned = False

    def key(self, host: str) -> str:
        return f"{self._prefix}{host}"

    def pause_key(self, host: str) -> str:
        return f"{self._prefix}pause:{host}"

    def reserve(self, host: str, rate_per_s: float | None) -> float:
        """Atomically reserve the next slot for ``host``; return the seconds until it."""
        interval = _interval_s(rate_per_s)
        if time.monotonic() < self._down_until:
            return self._fallback.reserve(host, rate_per_s)
        interval_us = 0 if interval is None else max(1, round(interval * 1_000_000))
        try:
            wait_us = self._script(keys=[self.key(host), self.pause_key(host)], args=[interval_us])
        except Exception as exc:  # Redis down: keep crawling, limited per process only
            self._redis_failed(exc)
            return self._fallback.reserve(host, rate_per_s)
        if self._warned:
            self._warned = False
            logger.info("Redis rate limiter available again")
        return max(0.0, int(wait_us) / 1_000_000)

    def mark_sent(self, host: str, rate_per_s: float | None) -> float:
        """Like `LocalRateLimiter.mark_sent`, for every process sharing the Redis."""
        if time.monotonic() < self._down_until:
            return self._fallback.mark_sent(host, rate_per_s)
        interval_us = max(1, round((_interval_s(rate_per_s) or 0.0) * 1_000_000))
        try:
            wait_us = self._mark_sent_script(
                keys=[f"{self._prefix}sent:{host}", self.pause_key(host)], args=[interval_us]
            )
        except Exception as exc:  # Redis down: keep crawling, limited per process only
            self._redis_failed(exc)
            return self._fallback.mark_sent(host, rate_per_s)
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
        return _acquire(self, host, rate_per_s)
