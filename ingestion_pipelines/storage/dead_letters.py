"""Rejected input, kept raw with the reason, in `dead_letter`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine

from ingestion_pipelines.redaction import redact
from ingestion_pipelines.storage.tables import dead_letter


@dataclass
class DeadLetter:
    worker_id: str
    reason: str
    payload: str | bytes | Any
    context: dict[str, Any] = field(default_factory=dict)
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self, run_id: str | None) -> dict[str, Any]:
        payload = self.payload
        if isinstance(payload, bytes):
            payload = (
                payload.decode("utf-8", errors="surrogateescape")
                .encode("utf-8", errors="backslashreplace")
                .decode("utf-8")
            )
        elif not isinstance(payload, str):
            payload = orjson.dumps(payload, default=str).decode()
        return {
            "worker_id": self.worker_id,
            "received_at": self.received_at,
            "reason": redact(self.reason)[:10_000],
            "payload": payload,
            "run_id": run_id,
            "context": self.context or None,
        }


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
