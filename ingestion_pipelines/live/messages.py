"""What the relay sends: messages (built once for every client), gaps, and the checks of what a
client asks for (channel patterns, `Last-Event-ID`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

import orjson

from ingestion_pipelines.core.errors import IngestError

KINDS = ("ticks", "bars", "progress")
REDIS_PATTERNS = tuple(f"{kind}:*" for kind in KINDS)
MAX_PATTERNS = 16  # per client
MAX_PATTERN_CHARS = 200
_EVENT_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})", re.ASCII)


class PatternError(IngestError, ValueError):
    """A `channel` pattern that can never match a relayed channel, or too many of them."""


class EventIdError(IngestError, ValueError):
    """A `Last-Event-ID` that is not an id this relay could have sent."""


def kinds_of(pattern: str) -> frozenset[str]:
    """The kinds of channel (`ticks`, `bars`, `progress`) a pattern names. A `*` may span
    colons (`*ticks:*` also matches `progress:ticks:1`): what a client receives is filtered by
    its role's kinds again when messages are delivered."""
    if pattern == "*":
        return frozenset(KINDS)
    head, colon, _ = pattern.partition(":")
    if not colon:
        return frozenset()
    return frozenset(k for k in KINDS if fnmatchcase(k, head))


def check_patterns(patterns: Iterable[str], allowed: Iterable[str] = KINDS) -> list[str]:
    """The patterns to relay (every channel of the `allowed` kinds when none is given);
    `PatternError` for a pattern outside `ticks:*`, `bars:*`, `progress:*` or past the caps;
    `PermissionError` for one reaching a kind outside `allowed` (the client's role)."""
    allowed = tuple(allowed)
    checked = [p.strip() for p in patterns if p.strip()]
    if not checked:
        return [f"{kind}:*" for kind in allowed]
    if len(checked) > MAX_PATTERNS:
        raise PatternError(f"at most {MAX_PATTERNS} channel patterns per client")
    for pattern in checked:
        if len(pattern) > MAX_PATTERN_CHARS:
            raise PatternError(f"channel patterns have at most {MAX_PATTERN_CHARS} characters")
        kinds = kinds_of(pattern)
        if not kinds:
            raise PatternError(
                f"channel {pattern!r}: relayed channels are {', '.join(REDIS_PATTERNS)} "
                "(glob patterns, e.g. ticks:binance:* or progress:*)"
            )
        if not kinds & set(allowed):
            shown = ", ".join(f"{k}:*" for k in allowed)
            raise PermissionError(f"channel {pattern!r}: this token may read {shown} only")
    return list(dict.fromkeys(checked))


def parse_event_id(last_event_id: str) -> tuple[int, int]:
    """(epoch, seq) of an id `<epoch>-<seq>` in ASCII digits; `EventIdError` otherwise."""
    match = _EVENT_ID.fullmatch(last_event_id.strip())
    if match is None:
        raise EventIdError(
            f"Last-Event-ID {last_event_id[:40]!r}: expected <epoch>-<seq> as this relay sends"
        )
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True, slots=True)
class Message:
    """One relayed message, with its wire forms built once for every client."""

    seq: int
    channel: str
    event_id: str
    json: str  # {"id": ..., "channel": ..., "data": <the published JSON>}
    sse: bytes  # the SSE event: id and one data line


def _one_line(payload: bytes) -> str:
    """The published payload as JSON text on one line. Valid JSON can hold a raw CR or LF only
    as whitespace between tokens (inside strings they must be escaped), so replacing them with
    spaces re-serialises the same document, numbers exactly as published (no float round trip).
    Anything else is relayed as a JSON string."""
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError:
        return orjson.dumps(payload.decode("utf-8", "replace")).decode()
    text = payload.decode()
    if "\r" in text or "\n" in text:
        text = text.replace("\r", " ").replace("\n", " ")
    return text


def make_message(epoch: int, seq: int, channel: str, payload: bytes) -> Message:
    event_id = f"{epoch}-{seq}"
    head = orjson.dumps({"id": event_id, "channel": channel}).decode()
    json = f'{head[:-1]},"data":{_one_line(payload)}}}'
    return Message(seq, channel, event_id, json, f"id: {event_id}\ndata: {json}\n\n".encode())


@dataclass(frozen=True)
class Gap:
    """What a resuming client could not get back: `missed` messages (None: unknown)."""

    missed: int | None
    reason: str

    def json(self) -> str:
        return orjson.dumps({"event": "gap", "missed": self.missed, "reason": self.reason}).decode()

    @property
    def sse(self) -> bytes:
        return f"event: gap\ndata: {self.json()}\n\n".encode()
