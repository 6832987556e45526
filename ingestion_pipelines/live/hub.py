"""The relay's core: one Redis pattern subscription, a short replay buffer and bounded queues.

    hub = Hub(redis_url)                     # started by the app (`await hub.run()` in a task)
    client = hub.subscribe(["ticks:*"], last_event_id="1764490000000-42")
    message = await client.next(timeout_s=15)     # a Message, or None: time for a heartbeat

Every message received on `ticks:*`, `bars:*` or `progress:*` gets an id `<epoch>-<seq>` (the
epoch is the hub's start time in ms, so ids from an earlier process are recognised), goes into
the replay buffer (the newest `replay_size` messages), and is offered to every client whose
glob patterns match its channel. Offering never waits: a client whose queue is full is dropped
(`client.gone` is set with the reason), so a slow client never slows the Redis reader, Redis or
the sidecar that publishes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

import orjson
from loguru import logger

from ingestion_pipelines.errors import IngestError
from ingestion_pipelines.redaction import redact, redact_url, register_secret
from ingestion_pipelines.retry import Backoff

KINDS = ("ticks", "bars", "progress")
REDIS_PATTERNS = tuple(f"{kind}:*" for kind in KINDS)
REPLAY_SIZE = 5_000
CLIENT_QUEUE_SIZE = 1_000
NO_REDIS = (
    "INGEST_REDIS_URL is not set: `ingest live` relays the Redis channels ticks:*, bars:* and "
    "progress:* that the sidecar and the crawls publish; set INGEST_REDIS_URL (the same Redis "
    "as the sidecar's) and restart it"
)


class PatternError(IngestError, ValueError):
    """A `channel` pattern that can never match a relayed channel."""


def check_patterns(patterns: Iterable[str]) -> list[str]:
    """The patterns to relay (every relayed channel when none is given); `PatternError` for a
    pattern outside `ticks:*`, `bars:*`, `progress:*`."""
    checked = [p.strip() for p in patterns if p.strip()]
    if not checked:
        return list(REDIS_PATTERNS)
    for pattern in checked:
        head, colon, _ = pattern.partition(":")
        if pattern != "*" and not (colon and any(fnmatchcase(kind, head) for kind in KINDS)):
            raise PatternError(
                f"channel {pattern!r}: relayed channels are {', '.join(REDIS_PATTERNS)} "
                "(glob patterns, e.g. ticks:binance:* or progress:*)"
            )
    return checked


def matches(patterns: list[str], channel: str) -> bool:
    return any(fnmatchcase(channel, p) for p in patterns)


@dataclass(frozen=True, slots=True)
class Message:
    """One relayed message, with its wire forms built once for every client."""

    seq: int
    channel: str
    event_id: str
    json: str  # {"id": ..., "channel": ..., "data": <the published JSON>}

    @property
    def sse(self) -> bytes:
        return f"id: {self.event_id}\ndata: {self.json}\n\n".encode()


def _message(epoch: int, seq: int, channel: str, payload: bytes) -> Message:
    try:
        orjson.loads(payload)
        data = payload.decode()
    except (orjson.JSONDecodeError, UnicodeDecodeError):
        data = orjson.dumps(payload.decode("utf-8", "replace")).decode()
    event_id = f"{epoch}-{seq}"
    head = orjson.dumps({"id": event_id, "channel": channel}).decode()
    return Message(seq, channel, event_id, f'{head[:-1]},"data":{data}}}')


class Client:
    """One connected browser or program: its patterns and its bounded queue."""

    def __init__(self, patterns: list[str], queue_size: int):
        self.patterns = patterns
        self.queue: asyncio.Queue[Message | Gap] = asyncio.Queue(queue_size)
        self.gone = asyncio.Event()
        self.dropped: str | None = None

    def wants(self, channel: str) -> bool:
        return matches(self.patterns, channel)

    def offer(self, message: Message | Gap) -> None:
        if self.dropped is not None:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.drop(f"too slow: {self.queue.maxsize} messages waiting; reconnect to resume")

    def drop(self, reason: str) -> None:
        self.dropped = reason
        self.gone.set()

    async def next(self, timeout_s: float) -> Message | Gap | None:
        """The next message, or None when none came within `timeout_s` (send a heartbeat)."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout_s)
        except TimeoutError:
            return None


@dataclass(frozen=True)
class Gap:
    """What a resuming client could not get back: `missed` messages (None: unknown)."""

    missed: int | None
    reason: str

    def json(self) -> str:
        return orjson.dumps({"event": "gap", "missed": self.missed, "reason": self.reason}).decode()


class Hub:
    """Reads Redis, keeps the replay buffer, fans out to clients (one event loop, no locks)."""

    def __init__(
        self,
        redis_url: str | None,
        *,
        replay_size: int = REPLAY_SIZE,
        queue_size: int = CLIENT_QUEUE_SIZE,
    ):
        self.redis_url = redis_url
        if redis_url:
            register_secret(urlsplit(redis_url).password)  # never in a log line or /status
        self.queue_size = queue_size
        self.epoch = time.time_ns() // 1_000_000
        self.seq = 0
        self.buffer: deque[Message] = deque(maxlen=replay_size)
        self.clients: set[Client] = set()
        self.dropped = 0
        self.status = "not configured" if not redis_url else "connecting"
        self.ready = asyncio.Event()

    # ---- clients ------------------------------------------------------------------------------
    def subscribe(
        self, patterns: list[str], last_event_id: str | None = None
    ) -> tuple[Client, Gap | None]:
        """A new client; with `last_event_id`, its queue starts with every buffered message
        after that id (and a `Gap` when some are no longer buffered)."""
        backlog: list[Message] = []
        gap = None
        if last_event_id:
            after, gap = self._resume_point(last_event_id)
            backlog = [m for m in self.buffer if m.seq > after and matches(patterns, m.channel)]
        # Room for the backlog on top of the usual bound, so a resume is never dropped at once.
        client = Client(patterns, self.queue_size + len(backlog))
        for message in backlog:
            client.offer(message)
        self.clients.add(client)
        return client, gap

    def _resume_point(self, last_event_id: str) -> tuple[int, Gap | None]:
        epoch, _, seq = last_event_id.strip().partition("-")
        if not (epoch.isdigit() and seq.isdigit()) or int(epoch) != self.epoch:
            oldest = self.buffer[0].seq - 1 if self.buffer else self.seq
            return oldest, Gap(
                None, "the relay restarted since that id: messages in between are lost"
            )
        after = int(seq)
        oldest = self.buffer[0].seq if self.buffer else self.seq + 1
        if after < oldest - 1:
            missed = oldest - 1 - after
            return after, Gap(missed, f"{missed} messages are older than the replay buffer")
        return after, None

    def unsubscribe(self, client: Client) -> None:
        self.clients.discard(client)
        if client.dropped is not None:
            self.dropped += 1
            logger.info("dropped a live client ({})", client.dropped)

    # ---- Redis --------------------------------------------------------------------------------
    def dispatch(self, channel: str, payload: bytes) -> Message:
        """Number, buffer and fan out one message (synchronous: never waits on a client)."""
        self.seq += 1
        message = _message(self.epoch, self.seq, channel, payload)
        self.buffer.append(message)
        for client in self.clients:
            if client.wants(channel):
                client.offer(message)
        return message

    def tell_everyone(self, gap: Gap) -> None:
        """A gap every client must know of (not buffered: it concerns this moment)."""
        for client in self.clients:
            client.offer(gap)

    async def run(self) -> None:
        """Relay until cancelled, reconnecting to Redis with backoff."""
        if not self.redis_url:
            logger.warning(NO_REDIS)
            return
        import redis.asyncio as aioredis

        backoff = Backoff(base_s=0.5, cap_s=10.0)
        where = redact_url(self.redis_url)
        while True:
            connection = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=5)
            pubsub = connection.pubsub()
            try:
                await pubsub.psubscribe(*REDIS_PATTERNS)
                if self.status != "connected":
                    logger.info("relaying {} from Redis at {}", ", ".join(REDIS_PATTERNS), where)
                self.status = "connected"
                self.ready.set()
                backoff.reset()
                async for item in pubsub.listen():
                    if item["type"] == "pmessage":
                        self.dispatch(item["channel"].decode(), item["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect; the clients stay
                status = f"Redis at {where} unreachable: {redact(str(exc))[:300]}"
                if status != self.status:
                    logger.warning("{} (retrying)", status)
                    if self.ready.is_set():
                        self.tell_everyone(Gap(None, f"the relay lost Redis: {status}"))
                self.status = status
                await asyncio.sleep(backoff.next())
            finally:
                await pubsub.aclose()
                await connection.aclose()

    def describe(self) -> dict[str, object]:
        return {
            "redis": self.status,
            "message": NO_REDIS if not self.redis_url else None,
            "clients": len(self.clients),
            "dropped_clients": self.dropped,
            "relayed": self.seq,
            "buffered": len(self.buffer),
            "channels": list(REDIS_PATTERNS),
        }
