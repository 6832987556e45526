"""The relay's core: one Redis pattern subscription, a short replay buffer, and feeds.

    hub = Hub(redis_url)                     # started by the app (`await hub.run()` in a task)
    client, gap = hub.subscribe(["ticks:*"], last_event_id="1764490000000-42", user="alice")
    items = client.take()                    # what arrived since the last take (may be [])
    await client.wait()                      # until something arrives (or a heartbeat tick)

Every message received on `ticks:*`, `bars:*` or `progress:*` gets an id `<epoch>-<seq>` (the
epoch is the hub's start time in ms, so ids from an earlier process are recognised) and goes
into the replay buffer (the newest `replay_size` messages).

Clients asking for the same channels with the same role share one `Feed`: a message is matched
against each distinct subscription once (the channel -> feeds routes are cached), appended to
the feeds it matches, and each client keeps a cursor into its feed's log. Dispatch therefore
costs one append per matching subscription, not one per client and pattern, and a client takes
everything that arrived since its last write in one batch. Nothing here waits on a client: one
more than `queue_size` messages behind is dropped (`client.gone` is set with the reason), so a
slow client never slows the Redis reader, Redis or the sidecar that publishes.

Caps (`Limits`): clients in all, connections per user, distinct subscriptions; patterns per
client are capped in `messages.check_patterns`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from loguru import logger

from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.core.redaction import redact, redact_url, register_secret
from ingestion_pipelines.core.retry import Backoff
from ingestion_pipelines.live.messages import (
    KINDS,
    REDIS_PATTERNS,
    Gap,
    Message,
    make_message,
    parse_event_id,
)
from ingestion_pipelines.live.messages import PatternError as PatternError  # its old home

REPLAY_SIZE = 5_000
CLIENT_QUEUE_SIZE = 1_000
# The most often a feed wakes its clients. Each wake costs one socket write per client, and a
# write's cost is mostly per call, not per byte (8 µs for 400 B or for 12 KB on the 2-core test
# machine): messages arriving within the interval go out together, in one write per client.
FLUSH_S = 0.04
MAX_ROUTES = 10_000  # cached channel -> feeds routes
NO_REDIS = (
    "INGEST_REDIS_URL is not set: `ingest live` relays the Redis channels ticks:*, bars:* and "
    "progress:* that the sidecar and the crawls publish; set INGEST_REDIS_URL (the same Redis "
    "as the sidecar's) and restart it"
)


@dataclass(frozen=True)
class Limits:
    """Caps on what clients may hold (INGEST_LIVE_MAX_CLIENTS, _MAX_PER_USER, _MAX_SUBSCRIPTIONS)."""

    clients: int = 2_000
    per_user: int = 16
    subscriptions: int = 256


class LimitError(IngestError):
    """A connection past one of the caps; `status` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Feed:
    """The clients sharing one subscription: its messages kept once, a cursor per client."""

    def __init__(
        self,
        key: tuple,
        patterns: tuple[str, ...],
        kinds: frozenset[str],
        flush_s: float = FLUSH_S,
    ):
        self.key = key
        self.patterns = patterns
        self.kinds = kinds
        self.flush_s = flush_s
        self.log: list[Message | Gap] = []
        self.base = 0  # the position of log[0] since the feed began
        self.clients: set[Client] = set()
        self.waiters: list[asyncio.Future[None]] = []
        self._sse: tuple[int, int, bytes] = (0, 0, b"")  # the last range joined, and its bytes
        self._flushed_at = float("-inf")  # the loop time of the last wake for new messages
        self._flush_due = False

    @property
    def end(self) -> int:
        return self.base + len(self.log)

    def sse_between(self, start: int, end: int) -> bytes:
        """The SSE bytes of the messages from `start` to `end`: joined once for all the clients
        taking the same range (they usually do, woken together)."""
        first, last, chunk = self._sse
        if (first, last) != (start, end):
            chunk = b"".join(item.sse for item in self.log[start - self.base : end - self.base])
            self._sse = (start, end, chunk)
        return chunk

    def wants(self, channel: str) -> bool:
        """Whether the channel is for this feed: its role's kinds, then its patterns."""
        if channel.partition(":")[0] not in self.kinds:
            return False
        return any(fnmatchcase(channel, p) for p in self.patterns)

    def push(self, item: Message | Gap, queue_size: int) -> None:
        self.log.append(item)
        if len(self.log) >= 2 * queue_size:
            self._trim(queue_size)
        if self.waiters and not self._flush_due:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        """Wake the waiting clients once for everything pushed until then: at the end of this
        loop tick, or `flush_s` after the last wake when that is later."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pushed outside the event loop (nobody can be waiting there)
            self.wake()
            return
        self._flush_due = True
        at = self._flushed_at + self.flush_s
        if at <= loop.time():
            loop.call_soon(self._flush, loop)
        else:
            loop.call_at(at, self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flush_due = False
        self._flushed_at = loop.time()
        self.wake()

    def wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _trim(self, queue_size: int) -> None:
        """Drop the clients more than `queue_size` behind, forget what every client has."""
        end = self.end
        for client in list(self.clients):
            if client.dropped is None and client.cursor < end - queue_size:
                client.drop(
                    f"too slow: {queue_size} messages waiting; reconnect to resume", slow=True
                )
        cursors = [c.cursor for c in self.clients if c.dropped is None]
        new_base = min(cursors, default=end)
        del self.log[: new_base - self.base]
        self.base = new_base


class Client:
    """One connected browser or program: its feed, its cursor, what it must get first."""

    def __init__(self, feed: Feed, user: str | None, backlog: list[Message | Gap]):
        self.feed = feed
        self.user = user
        self.cursor = feed.end
        self.first = backlog  # the resumed messages and gaps, before the feed's
        self.gone = asyncio.Event()
        self.dropped: str | None = None
        self.missed = 0  # messages it did not get, when dropped
        self.slow = False  # dropped for not keeping up
        self.expiry: asyncio.TimerHandle | None = None

    @property
    def patterns(self) -> tuple[str, ...]:
        return self.feed.patterns

    def take(self) -> list[Message | Gap]:
        """Everything that arrived since the last take, in order (nothing once dropped: its
        place in the feed may be forgotten)."""
        if self.dropped is not None:
            return []
        items, self.first = self.first, []
        feed = self.feed
        if self.cursor < feed.end:
            items = items + feed.log[self.cursor - feed.base :]
            self.cursor = feed.end
        return items

    def take_sse(self) -> bytes:
        """`take()` as the SSE bytes to write."""
        if self.dropped is not None:
            return b""
        first, self.first = self.first, []
        feed = self.feed
        chunk = b""
        if self.cursor < feed.end:
            chunk = feed.sse_between(self.cursor, feed.end)
            self.cursor = feed.end
        return b"".join(item.sse for item in first) + chunk if first else chunk

    async def wait(self) -> None:
        """Until the feed has something new or the hub's heartbeat tick."""
        waiter = asyncio.get_running_loop().create_future()
        self.feed.waiters.append(waiter)
        await waiter

    def drop(self, reason: str, *, slow: bool = False) -> None:
        if self.dropped is None:
            self.missed = self.feed.end - self.cursor
            self.dropped = reason
            self.slow = slow
        self.gone.set()


class Hub:
    """Reads Redis, keeps the replay buffer, fans out to feeds (one event loop, no locks)."""

    def __init__(
        self,
        redis_url: str | None,
        *,
        replay_size: int = REPLAY_SIZE,
        queue_size: int = CLIENT_QUEUE_SIZE,
        heartbeat_s: float = 15.0,
        limits: Limits | None = None,
        flush_s: float = FLUSH_S,
    ):
        self.redis_url = redis_url
        self.flush_s = flush_s
        if redis_url:
            register_secret(urlsplit(redis_url).password)  # never in a log line or /status
        self.queue_size = queue_size
        self.heartbeat_s = heartbeat_s
        self.limits = limits or Limits()
        self.epoch = time.time_ns() // 1_000_000
        self.seq = 0
        self.buffer: deque[Message] = deque(maxlen=replay_size)
        self.clients: set[Client] = set()
        self.feeds: dict[tuple, Feed] = {}
        self._routes: dict[str, tuple[Feed, ...]] = {}
        self.per_user: Counter[str] = Counter()
        self.dropped = 0
        self.dropped_messages = 0
        self.writes = 0  # batches written to clients (one socket write each)
        self.refused: Counter[str] = Counter()
        self.status = "not configured" if not redis_url else "connecting"
        self.ready = asyncio.Event()

    # ---- clients ------------------------------------------------------------------------------
    def subscribe(
        self,
        patterns: list[str],
        last_event_id: str | None = None,
        *,
        user: str | None = None,
        kinds: tuple[str, ...] = KINDS,
        expires_at: float | None = None,
    ) -> tuple[Client, Gap | None]:
        """A new client of `user` (None: anonymous, counted in the total only) reading
        `patterns` (of the `kinds` its role may read); with
        `last_event_id`, it first gets every buffered message after that id (and a `Gap` when
        some are no longer buffered). `EventIdError` for a malformed id, `LimitError` past a
        cap. `expires_at` (epoch seconds): the client is dropped then (its token expires)."""
        after, gap = self._resume_point(last_event_id) if last_event_id else (None, None)
        self._check_limits(user, patterns, kinds)
        feed = self._feed(tuple(patterns), frozenset(kinds))
        backlog: list[Message | Gap] = []
        if after is not None:
            backlog = [m for m in self.buffer if m.seq > after and feed.wants(m.channel)]
        client = Client(feed, user, backlog)
        feed.clients.add(client)
        self.clients.add(client)
        if user is not None:
            self.per_user[user] += 1
        if expires_at is not None:
            delay = max(0.0, expires_at - time.time())
            client.expiry = asyncio.get_running_loop().call_later(
                delay, client.drop, "the token expired: reconnect with a new one"
            )
        return client, gap

    def _check_limits(self, user: str | None, patterns: list[str], kinds: tuple[str, ...]) -> None:
        limits = self.limits
        if len(self.clients) >= limits.clients:
            self._refuse("clients", 503, f"the relay serves {limits.clients} clients at most")
        if user is not None and self.per_user[user] >= limits.per_user:
            self._refuse("per_user", 429, f"at most {limits.per_user} connections per user")
        key = (tuple(patterns), frozenset(kinds))
        if key not in self.feeds and len(self.feeds) >= limits.subscriptions:
            self._refuse(
                "subscriptions", 503, f"at most {limits.subscriptions} distinct subscriptions"
            )

    def _refuse(self, reason: str, status: int, text: str) -> None:
        self.refused[reason] += 1
        raise LimitError(status, text)

    def _feed(self, patterns: tuple[str, ...], kinds: frozenset[str]) -> Feed:
        key = (patterns, kinds)
        feed = self.feeds.get(key)
        if feed is None:
            feed = self.feeds[key] = Feed(key, patterns, kinds, self.flush_s)
            self._routes.clear()
        return feed

    def _resume_point(self, last_event_id: str) -> tuple[int, Gap | None]:
        epoch, after = parse_event_id(last_event_id)
        if epoch != self.epoch:
            oldest = self.buffer[0].seq - 1 if self.buffer else self.seq
            return oldest, Gap(
                None, "the relay restarted since that id: messages in between are lost"
            )
        oldest = self.buffer[0].seq if self.buffer else self.seq + 1
        if after < oldest - 1:
            missed = oldest - 1 - after
            return after, Gap(missed, f"{missed} messages are older than the replay buffer")
        return after, None

    def unsubscribe(self, client: Client) -> None:
        if client not in self.clients:
            return
        self.clients.discard(client)
        if client.user is not None:
            self.per_user[client.user] -= 1
            if self.per_user[client.user] <= 0:
                del self.per_user[client.user]
        if client.expiry is not None:
            client.expiry.cancel()
        feed = client.feed
        feed.clients.discard(client)
        if not feed.clients:
            del self.feeds[feed.key]
            self._routes.clear()
        if client.slow:
            self.dropped += 1
            self.dropped_messages += client.missed
        if client.dropped is not None:
            logger.info("dropped a live client ({})", client.dropped)

    # ---- Redis --------------------------------------------------------------------------------
    def dispatch(self, channel: str, payload: bytes) -> Message:
        """Number, buffer and fan out one message (synchronous: never waits on a client)."""
        self.seq += 1
        message = make_message(self.epoch, self.seq, channel, payload)
        self.buffer.append(message)
        feeds = self._routes.get(channel)
        if feeds is None:
            feeds = self._route(channel)
        for feed in feeds:
            feed.push(message, self.queue_size)
        return message

    def _route(self, channel: str) -> tuple[Feed, ...]:
        if len(self._routes) >= MAX_ROUTES:
            self._routes.clear()
        feeds = self._routes[channel] = tuple(f for f in self.feeds.values() if f.wants(channel))
        return feeds

    def tell_everyone(self, gap: Gap) -> None:
        """A gap every client must know of (not buffered: it concerns this moment)."""
        for feed in self.feeds.values():
            feed.push(gap, self.queue_size)

    async def heartbeats(self) -> None:
        """Wake every waiting client a few times per heartbeat interval, so an idle one sends
        its heartbeat (one timer for all, not one per client)."""
        while True:
            await asyncio.sleep(self.heartbeat_s / 3)
            for feed in list(self.feeds.values()):
                feed.wake()

    async def run(self) -> None:
        """Relay until cancelled, reconnecting to Redis with backoff."""
        if not self.redis_url:
            logger.warning(NO_REDIS)
            return
        import redis.asyncio as aioredis

        ticker = asyncio.create_task(self.heartbeats(), name="live-heartbeats")
        backoff = Backoff(base_s=0.5, cap_s=10.0)
        where = redact_url(self.redis_url)
        try:
            while True:
                connection = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=5)
                pubsub = connection.pubsub()
                try:
                    await pubsub.psubscribe(*REDIS_PATTERNS)
                    if self.status != "connected":
                        logger.info(
                            "relaying {} from Redis at {}", ", ".join(REDIS_PATTERNS), where
                        )
                    self.status = "connected"
                    self.ready.set()
                    backoff.reset()
                    async for item in pubsub.listen():
                        if item["type"] == "pmessage":
                            self.dispatch(item["channel"].decode(), item["data"])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - reconnect; the clients stay
                    self._lost(f"Redis at {where} unreachable: {redact(str(exc))[:300]}")
                    await asyncio.sleep(backoff.next())
                finally:
                    await pubsub.aclose()
                    await connection.aclose()
        finally:
            ticker.cancel()

    def _lost(self, status: str) -> None:
        if status != self.status:
            logger.warning("{} (retrying)", status)
            if self.ready.is_set():
                self.tell_everyone(Gap(None, f"the relay lost Redis: {status}"))
        self.status = status

    def describe(self) -> dict[str, object]:
        return {
            "redis": self.status,
            "message": NO_REDIS if not self.redis_url else None,
            "clients": len(self.clients),
            "subscriptions": len(self.feeds),
            "dropped_clients": self.dropped,
            "dropped_messages": self.dropped_messages,
            "relayed": self.seq,
            "writes": self.writes,
            "buffered": len(self.buffer),
            "channels": list(REDIS_PATTERNS),
        }
