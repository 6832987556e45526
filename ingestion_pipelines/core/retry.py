"""How the platform waits and tries again: one module for every retry loop.

Used by the HTTP client, the feed engine, the Dagster reporter, the REST gap filler and the asset
factory's retry decision. Backoff is exponential with *full jitter* (a uniform draw between zero
and the exponential ceiling, as in AWS's "Exponential Backoff And Jitter"), so that many clients
failing together do not retry together; a server's `Retry-After` wins over the draw.
"""

from __future__ import annotations

import email.utils
import random
import time
from datetime import UTC

# Statuses that may succeed when tried again later; every other 4xx is the caller's fault.
RETRYABLE_STATUSES = frozenset({408, 418, 425, 429})


def is_retryable_status(status: int | None) -> bool:
    """Whether an HTTP answer (None: no answer at all) may succeed when tried again."""
    return status is None or status >= 500 or status in RETRYABLE_STATUSES


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


def full_jitter(
    attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None
) -> float:
    """The wait before try `attempt + 1` (attempt counts from 1): uniform in
    [0, min(cap, base · 2^(attempt-1))]."""
    ceiling = min(cap_s, base_s * (2 ** max(attempt - 1, 0)))
    return (rng or random).uniform(0.0, ceiling)


class Backoff:
    """A retry loop's state: `next()` is the wait after one more failure, `reset()` after a
    success. `retry_after_s`, when the server sent one, replaces the jittered draw."""

    def __init__(self, base_s: float = 0.5, cap_s: float = 30.0, rng: random.Random | None = None):
        self.base_s = base_s
        self.cap_s = cap_s
        self.failures = 0
        self._rng = rng

    def next(self, retry_after_s: float | None = None) -> float:
        """Count one more failure and return how long to wait before trying again."""
        self.failures += 1
        if retry_after_s is not None:
            return retry_after_s
        return full_jitter(self.failures, self.base_s, self.cap_s, self._rng)

    def reset(self) -> None:
        """A success: the next failure starts from the base again."""
        self.failures = 0
