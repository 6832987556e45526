"""Feed ownership across sidecars: a Redis lease per feed shard with a fencing token.

The ids below are shard keys (`shards.py`): the feed id itself for a feed in one shard, else
`<feed>#<index>of<count>`; which replica tries which shard is decided by the runner.

- acquire: `SET ingest:lock:<feed> <token> NX PX ttl`; the fencing token is `INCR
  ingest:fence:<feed>` taken right after, stored in the lock value's companion key, logged and
  kept in `worker_state.details`;
- renew: a Lua compare-and-extend every `ttl/4` (only the holder of the token can extend);
- `owns(feed)`: True only while the local lease is fresh — measured from *before* the last
  successful renew, so a paused process considers itself the owner no longer than Redis does; the
  writer checks it before every commit, so an old owner never writes after a takeover;
- release: a Lua compare-and-delete (at shutdown, and when a feed is switched off);
- a standby retries every `retry_s`, so it takes over at most `ttl + retry_s` after the owner died.

Without Redis, `LocalOwnership` owns every feed (one sidecar).
"""

from __future__ import annotations

import threading
import time
import uuid

from loguru import logger

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class LocalOwnership:
    """One sidecar, no Redis: every feed is ours."""

    def acquire(self, feed_id: str) -> bool:
        """Always true: a lone sidecar owns every feed."""
        return True

    def owns(self, feed_id: str) -> bool:
        """Always true."""
        return True

    def fence(self, feed_id: str) -> int | None:
        """No fencing token without Redis."""
        return None

    def release(self, feed_id: str) -> None:
        """Nothing to release."""
        return None

    def held(self) -> set[str]:
        """No leases are held."""
        return set()

    def start(self) -> None:
        """Nothing to renew."""
        return None

    def stop(self) -> None:
        """Nothing to stop."""
        return None


class RedisOwnership:
    """Leases on Redis (see module doc). `start()` runs the renewal thread."""

    def __init__(self, client, *, ttl_s: float = 8.0, owner: str | None = None):
        self.client = client
        self.ttl_ms = int(ttl_s * 1000)
        self.token = owner or uuid.uuid4().hex
        self._leases: dict[str, float] = {}  # feed -> monotonic time the lease runs out
        self._fences: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._thread = threading.Thread(target=self._run, name="ownership", daemon=True)

    @staticmethod
    def key(feed_id: str) -> str:
        """The Redis key of a feed's lease."""
        return f"ingest:lock:{feed_id}"

    def start(self) -> None:
        """Start renewing the held leases."""
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and release every lease held."""
        self._stop.set()
        self._thread.join(2)
        for feed_id in list(self._leases):
            self.release(feed_id)

    def held(self) -> set[str]:
        """The feeds whose lease is held and not run out."""
        return {f for f in self._leases if self.owns(f)}

    def owns(self, feed_id: str) -> bool:
        """Whether our lease on the feed is still valid."""
        expires = self._leases.get(feed_id)
        return expires is not None and time.monotonic() < expires

    def fence(self, feed_id: str) -> int | None:
        """The fencing token taken with the feed's lease (None: not held)."""
        return self._fences.get(feed_id)

    def acquire(self, feed_id: str) -> bool:
        """Take the feed if nobody holds it (or renew it if we do). Never raises."""
        if self.owns(feed_id):
            return True
        started = time.monotonic()
        try:
            key = self.key(feed_id)
            taken = self.client.set(key, self.token, nx=True, px=self.ttl_ms)
            if not taken and self.client.get(key) != self.token.encode():
                return False
            fence = int(self.client.incr(f"ingest:fence:{feed_id}"))
        except Exception as exc:  # noqa: BLE001 - Redis down: we own nothing new
            logger.bind(worker_id=feed_id).warning("ownership lock unavailable: {}", exc)
            return False
        with self._lock:
            self._leases[feed_id] = started + self.ttl_ms / 1000 * 0.9
            self._fences[feed_id] = fence
        logger.bind(worker_id=feed_id).info(
            "ownership lock taken (fencing token {}, owner {})", fence, self.token[:8]
        )
        return True

    def release(self, feed_id: str) -> None:
        """Give the feed's lease up (only if it is still ours). Never raises."""
        with self._lock:
            had = self._leases.pop(feed_id, None)
            self._fences.pop(feed_id, None)
        if had is None:
            return
        try:
            self._release(keys=[self.key(feed_id)], args=[self.token])
            logger.bind(worker_id=feed_id).info("ownership lock released")
        except Exception as exc:  # noqa: BLE001 - it expires on its own
            logger.bind(worker_id=feed_id).warning("could not release the ownership lock: {}", exc)

    def _run(self) -> None:
        interval = self.ttl_ms / 1000 / 4
        while not self._stop.wait(interval):
            for feed_id in list(self._leases):
                started = time.monotonic()
                try:
                    ok = self._renew(keys=[self.key(feed_id)], args=[self.token, self.ttl_ms])
                except Exception as exc:  # noqa: BLE001 - the lease runs out on its own
                    logger.bind(worker_id=feed_id).warning("lock renewal failed: {}", exc)
                    continue
                with self._lock:
                    if feed_id not in self._leases:
                        continue
                    if ok:
                        self._leases[feed_id] = started + self.ttl_ms / 1000 * 0.9
                    else:
                        self._leases.pop(feed_id, None)
                        self._fences.pop(feed_id, None)
                        logger.bind(worker_id=feed_id).error(
                            "ownership lock lost (another sidecar took the feed)"
                        )
