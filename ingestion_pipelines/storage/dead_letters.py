"""Rejected input, kept raw with the reason, in `dead_letter`.

Payloads are capped (`cap_payload`): a dead letter keeps the head of the payload
(`PAYLOAD_HEAD_BYTES`), and its full length and SHA-256 in `context`, so it can always be written,
whatever the input's size and the server's `max_allowed_packet` (MariaDB's default is 16 MiB).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine

from ingestion_pipelines.redaction import redact
from ingestion_pipelines.storage.tables import dead_letter

PAYLOAD_HEAD_BYTES = 64 * 1024
REASON_MAX_CHARS = 10_000


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
    """A `dead_letter` row: payload capped (see `cap_payload`), reason redacted and bounded."""
    text, cut = cap_payload(payload)
    merged = {**(context or {}), **cut}
    return {
        "worker_id": worker_id,
        "received_at": received_at or datetime.now(UTC),
        "reason": redact(reason)[:REASON_MAX_CHARS],
        "payload": text,
        "run_id": run_id,
        "context": merged or None,
    }


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


def write_dead_letters(
    target: Engine | Connection, letters: Iterable[DeadLetter], run_id: str | None = None
) -> int:
    """Insert the letters (one transaction when given an Engine); returns how many."""
    rows = [letter.row(run_id) for letter in letters]
    if not rows:
        return 0
    if isinstance(target, Engine):
        with target.begin() as conn:
            conn.execute(dead_letter.insert(), rows)
    else:
        target.execute(dead_letter.insert(), rows)
    return len(rows)
