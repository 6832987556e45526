"""Sidecars that scale out: a feed's symbols split into shards, shards spread over live replicas.

- `plan_shards` splits a feed's symbols into shards, each one websocket connection. The source's
  limits shape them: Binance allows at most 1,024 streams per connection and 300 new
  connections per 5 minutes per IP, so a shard never carries more than 1,024 streams and a plan
  needing more connections than a window allows is refused. `symbols_per_shard` (0: as many as
  the source allows) makes smaller shards, so that several replicas share a feed. Sources with no
  known limits (SSI's board subscription) stay one shard: the feed itself.
- A shard's key names its ownership lock, fencing token (`feed_fence` row) and spool: the feed id
  for a feed in one shard (so one-shard feeds keep the keys they always had), else
  `<feed>#<index>of<count>` (a new layout gets new keys).
- `ReplicaSet` registers this sidecar on Redis with a heartbeat (a sorted set scored by Redis's
  own clock, so host clocks do not matter) and lists the live replicas.
- `ConnectionBudget` keeps shard starts (a replica joining, a dead replica's shards moving) within
  the source's connections per window, shared by the replicas on Redis; a fifth of the budget is
  left to the engines' own reconnects, which it does not count.
- `assign` maps shards to live replicas deterministically: rendezvous hashing with a bounded load
  (no replica gets more than ceil(shards / replicas)), so every replica computes the same answer
  and a replica coming or going moves few shards besides its own. `to_run` decides from the
  assignment and the current lease holders what one replica runs, keeping a balanced layout
  as it is. Exclusivity during a move comes from the leases (`ownership.py`), not from the
  assignment: the old owner stops, flushes and releases, then the new one acquires.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from loguru import logger

from ingestion_pipelines.config.workers import MAX_SYMBOLS

REPLICAS_KEY = "ingest:sidecar:replicas"

_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
"""
STARTS_SHARE = 0.8  # of a source's connections per window, for shard starts


@dataclass(frozen=True)
class ConnectionLimits:
    """A source's websocket limits."""

    streams_per_connection: int
    connections_per_window: int
    window_s: float


# Binance Spot market streams: 1,024 streams per connection; 300 connections per 5 min per IP.
# OKX (WebSocket overview): "connection limit: 3 requests per second (based on IP)"; no cap on
# the channels of one connection is documented (a subscribe request's args stay under 64 KB, the
# feed splits them), so a shard carries the settings' own maximum of symbols.
# Bybit (v5 "Connect"): Spot takes the args of one public connection up to 21,000 characters in
# all ("publicTrade." + a symbol of up to 25 characters: 567 topics), and "do not build over 500
# connections in 5 minutes" per WebSocket domain.
SOURCE_LIMITS: dict[str, ConnectionLimits] = {
    "binance": ConnectionLimits(
        streams_per_connection=1024, connections_per_window=300, window_s=300
    ),
    "okx": ConnectionLimits(
        streams_per_connection=MAX_SYMBOLS, connections_per_window=3, window_s=1
    ),
    "bybit": ConnectionLimits(
        streams_per_connection=21_000 // len("publicTrade." + "X" * 25),
        connections_per_window=500,
        window_s=300,
    ),
}


@dataclass(frozen=True)
class Shard:
    """Some of a feed's symbols, read over one connection by exactly one replica."""

    feed_id: str
    index: int
    count: int
    symbols: tuple[str, ...]

    @property
    def key(self) -> str:
        """The shard's id: the feed id alone, or `<feed>#<i>of<n>`."""
        return self.feed_id if self.count == 1 else f"{self.feed_id}#{self.index}of{self.count}"


def worker_of(key: str) -> str:
    """The feed (worker id) a shard key belongs to."""
    return key.split("#", 1)[0]


def plan_shards(
    feed_id: str, source: str | None, symbols: list[str], symbols_per_shard: int = 0
) -> list[Shard]:
    """Split `symbols` into shards within the source's limits (see module doc).

    Symbols are sorted and dealt round-robin, so every replica computes the same plan and shards
    differ in size by one symbol at most."""
    limits = SOURCE_LIMITS.get(source or "")
    if limits is None or not symbols:
        return [Shard(feed_id, 0, 1, tuple(symbols))]
    size = limits.streams_per_connection
    if symbols_per_shard > 0:
        size = min(size, symbols_per_shard)
    names = sorted(dict.fromkeys(symbols))
    count = math.ceil(len(names) / size)
    if count > limits.connections_per_window:
        raise ValueError(
            f"{feed_id}: {len(names)} symbols in shards of {size} need {count} connections, more "
            f"than {source} accepts from one IP in {limits.window_s:.0f} s "
            f"({limits.connections_per_window}); use larger shards"
        )
    if count == 1:
        return [Shard(feed_id, 0, 1, tuple(symbols))]
    return [Shard(feed_id, i, count, tuple(names[i::count])) for i in range(count)]


def _weight(replica: str, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{replica}|{key}".encode(), digest_size=8).digest())


def assign(keys: list[str], replicas: list[str]) -> dict[str, str]:
    """Shard key -> replica: rendezvous hashing with bounded loads. Every (shard, replica) pair
    is weighed by a hash of both; pairs are granted heaviest first while the replica has fewer
    than ceil(shards / replicas), so a replica leaving mostly moves only its own shards."""
    if not replicas:
        return {}
    cap = math.ceil(len(keys) / len(replicas))
    load = dict.fromkeys(replicas, 0)
    pairs = sorted(((_weight(r, k), k, r) for k in set(keys) for r in set(replicas)), reverse=True)
    out: dict[str, str] = {}
    for _w, key, replica in pairs:
        if key not in out and load[replica] < cap:
            out[key] = replica
            load[replica] += 1
    return out


def to_run(
    keys: list[str], holders: dict[str, str | None], live: list[str], me: str
) -> tuple[set[str], set[str]]:
    """(the shards replica `me` should run, the free ones it may take now), given who holds each
    shard's lease (`holders`, None: free) and the live replicas.

    It takes the free shards `assign` gives it, and keeps those it holds unless handing them over
    restores the balance (it holds more than its share, or their assigned replica holds fewer than
    its share): a replica joining gets its share, and a balanced layout does not churn."""
    if not keys:
        return set(), set()
    live = sorted({*live, me})
    target = assign(keys, live)
    low, high = len(keys) // len(live), math.ceil(len(keys) / len(live))
    load = Counter(h for h in holders.values() if h)
    keep, take = set(), set()
    for key in sorted(keys):
        holder = holders.get(key)
        if holder == me:
            if target[key] == me or not (load[me] > high or load[target[key]] < low):
                keep.add(key)
            else:  # handed over: count it where it is going
                load[me] -= 1
                load[target[key]] += 1
        elif holder is None and target[key] == me:
            take.add(key)
    return keep | take, take


class ConnectionBudget:
    """New connections per source and window (see module doc): on Redis when given (shared by
    the replicas), else in this process."""

    def __init__(self, client=None, limits: dict[str, ConnectionLimits] | None = None):
        self.client = client
        self.limits = SOURCE_LIMITS if limits is None else limits
        self._take = client.register_script(_TAKE) if client is not None else None
        self._local: dict[str, list[float]] = {}
        self._count = itertools.count()
        self._owner = uuid.uuid4().hex

    def take(self, source: str | None) -> bool:
        """Count one new connection to `source`; False (not counted) when the window is full."""
        limits = self.limits.get(source or "")
        if limits is None:
            return True
        allowed = max(1, int(limits.connections_per_window * STARTS_SHARE))
        if self._take is None:
            now = time.monotonic()
            recent = [t for t in self._local.get(source, []) if now - t < limits.window_s]
            self._local[source] = recent
            if len(recent) >= allowed:
                return False
            recent.append(now)
            return True
        member = f"{self._owner}:{next(self._count)}"
        try:
            return bool(
                self._take(
                    keys=[f"ingest:connections:{source}"],
                    args=[int(limits.window_s * 1000), allowed, member],
                )
            )
        except Exception as exc:  # noqa: BLE001 - Redis down: no lease can be taken either
            logger.warning("connection budget unavailable: {}", exc)
            return False


class ReplicaSet:
    """This sidecar's membership among the replicas sharing Redis (see module doc)."""

    def __init__(self, client, replica_id: str, *, ttl_s: float = 5.0):
        self.client = client
        self.replica_id = replica_id
        self.ttl_ms = int(ttl_s * 1000)
        self._beat = client.register_script(_BEAT)

    def beat(self) -> list[str] | None:
        """Renew our heartbeat; the live replicas (us included), or None if Redis is down."""
        try:
            live = self._beat(keys=[REPLICAS_KEY], args=[self.replica_id, self.ttl_ms])
        except Exception as exc:  # noqa: BLE001 - Redis down: leases run out on their own
            logger.warning("replica heartbeat failed: {}", exc)
            return None
        return sorted(r.decode() if isinstance(r, bytes) else str(r) for r in live)

    def leave(self) -> None:
        """Deregister at a clean stop, so the others rebalance at once."""
        try:
            self.client.zrem(REPLICAS_KEY, self.replica_id)
        except Exception as exc:  # noqa: BLE001 - the heartbeat expires on its own
            logger.warning("could not leave the replica set: {}", exc)
