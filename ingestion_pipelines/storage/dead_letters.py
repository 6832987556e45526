"""Rejected input, kept raw with the reason, in `dead_letter`.

Payloads are capped (`cap_payload`): a dead letter keeps the head of the payload
(`PAYLOAD_HEAD_BYTES`), and its full length and SHA-256 in `context`, so it can always be written,
whatever the input's size and the server's `max_allowed_packet` (MariaDB's default is 16 MiB).

Each letter carries a `fingerprint` of what it is, unique per worker, and is inserted with ignore
semantics (`insert_dead_letters`, through `storage.upsert`): a batch written again (the sidecar's
writer process restarted before it acknowledged a commit, a spool file replayed twice) cannot
store a letter twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine

from ingestion_pipelines.core.redaction import redact
from ingestion_pipelines.storage.tables import dead_letter
from ingestion_pipelines.storage.upsert import upsert

PAYLOAD_HEAD_BYTES = 64 * 1024
REASON_MAX_CHARS = 10_000
# a letter's identity: the same worker never stores two letters with one fingerprint
DEAD_LETTER_KEY = ("worker_id", "fingerprint")


def _as_text(payload: bytes) -> str:
    return payload.decode("utf-8", errors="backslashreplace")


def cap_payload(payload: str | bytes | Any) -> tuple[str, dict[str, Any]]:
    """The text to store for `payload` and what `context` gains when it was cut: a payload longer
    than `PAYLOAD_HEAD_BYTES` (UTF-8) keeps its head, with `payload_bytes` (its full length) and
    `payload_sha256`. Bytes that are not UTF-8 are shown as \\x escapes."""
    if isinstance(payload, bytes):
        raw = payload
    elif isinstance(payload, str):
        raw = payload.encode("utf-8", errors="surrogatepass")
    else:
        raw = orjson.dumps(payload, default=str)
    if len(raw) <= PAYLOAD_HEAD_BYTES:
        return (payload if isinstance(payload, str) else _as_text(raw)), {}
    head = _as_text(raw[:PAYLOAD_HEAD_BYTES])
    return head, {
        "payload_truncated": True,
        "payload_bytes": len(raw),
        "payload_sha256": hashlib.sha256(raw).hexdigest(),
    }


def dead_letter_row(
    worker_id: str,
    reason: str,
    payload: str | bytes | Any,
    *,
    received_at: datetime | None = None,
    run_id: str | None = None,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A `dead_letter` row: payload capped (see `cap_payload`), reason redacted and bounded, and
    its `fingerprint`. `received_at` is when the input arrived; without it the letter is dated
    now and its fingerprint leaves the time out (the same input refused for the same reason is
    the same letter, whenever it is refused again)."""
    text, cut = cap_payload(payload)
    row = {
        "worker_id": worker_id,
        "received_at": received_at,
        "reason": redact(reason)[:REASON_MAX_CHARS],
        "payload": text,
        "run_id": run_id,
        "context": {**(context or {}), **cut} or None,
    }
    row["fingerprint"] = fingerprint(row)
    if received_at is None:
        row["received_at"] = datetime.now(UTC)
    return row


def fingerprint(row: dict[str, Any]) -> str:
    """SHA-256 (hex) of what a letter is: its worker, arrival time (None: left out), reason,
    stored payload and context; deterministic, so a letter made again from the same input has
    the same one."""
    received_at = row["received_at"]
    if received_at is not None:
        received_at = received_at.astimezone(UTC) if received_at.tzinfo else received_at
    identity = (
        row["worker_id"],
        received_at.isoformat() if received_at is not None else None,
        row["reason"],
        row["payload"],
        row["context"],
    )
    encoded = orjson.dumps(
        identity, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    )
    return hashlib.sha256(encoded).hexdigest()


@dataclass
class DeadLetter:
    """A rejected record or frame, kept raw with the reason."""

    worker_id: str
    reason: str
    payload: str | bytes | Any
    context: dict[str, Any] = field(default_factory=dict)
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self, run_id: str | None) -> dict[str, Any]:
        """The `dead_letter` row for this rejection in run `run_id`."""
        return dead_letter_row(
            self.worker_id,
            self.reason,
            self.payload,
            received_at=self.received_at,
            run_id=run_id,
            context=self.context,
        )


def insert_dead_letters(target: Engine | Connection, rows: list[dict[str, Any]]) -> int:
    """Insert `dead_letter_row` rows, ignoring each one already stored (same worker and
    fingerprint); one transaction when given an Engine. Returns how many were sent. (A row from
    before the fingerprint, read back from an old spool, gets its fingerprint here.)"""
    if not rows:
        return 0
    rows = [
        row if "fingerprint" in row else {**row, "fingerprint": fingerprint(row)} for row in rows
    ]
    return upsert(
        target, dead_letter, rows, key=DEAD_LETTER_KEY, on_conflict="ignore", classify=False
    ).written


def write_dead_letters(
    target: Engine | Connection, letters: Iterable[DeadLetter], run_id: str | None = None
) -> int:
    """Insert the letters (one transaction when given an Engine); returns how many."""
    return insert_dead_letters(target, [letter.row(run_id) for letter in letters])
