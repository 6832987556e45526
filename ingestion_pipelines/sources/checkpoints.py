"""Crawl checkpoints: which requests of a partitioned crawl have committed their rows.

A checkpoint is keyed by the run's logical work (worker, partition range, request identity), not
by run id, so Dagster's re-execution, a run retry and `ingest trigger` of the same range all
resume. A request is checkpointed in the transaction that commits its last rows (or right after,
when the data tables live in another database: a crash in between re-fetches one batch, which the
idempotent upsert makes harmless). Its state keeps what the request yielded besides rows, so a
resumed run re-creates the follow-up requests, the source's totals and the run's counts exactly.
The checkpoints of a range are deleted when the range completes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, delete, select

from ingestion_pipelines.sources.base import Request, Window
from ingestion_pipelines.storage.tables import crawl_checkpoint
from ingestion_pipelines.storage.upsert import upsert


def request_key(request: Request) -> str:
    """The identity of a request: what it asks for (method, path, params, body), hashed."""
    identity = [request.method.upper(), request.path, request.params, request.json]
    return hashlib.sha256(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)).hexdigest()


def dump_request(request: Request) -> dict[str, Any]:
    """A follow-up request as JSON (its `meta` must hold JSON values to be resumable)."""
    return {
        "path": request.path,
        "method": request.method,
        "params": dict(request.params) if request.params else None,
        "json": request.json,
        "headers": dict(request.headers) if request.headers else None,
        "conditional": request.conditional,
        "meta": request.meta,
    }


def load_request(data: dict[str, Any]) -> Request:
    """A Request back from its checkpointed form."""
    return Request(**data)


def scope_of(window: Window) -> str:
    """The checkpoint scope of a partitioned run: its range of days."""
    return f"{window.start.isoformat()}..{window.last_day.isoformat()}"


class Checkpoints:
    """The checkpoints of one worker and partition range, in the control database."""

    def __init__(self, engine: Engine, worker_id: str, scope: str):
        self.engine = engine
        self.worker_id = worker_id
        self.scope = scope

    def _where(self):
        return (crawl_checkpoint.c.worker_id == self.worker_id) & (
            crawl_checkpoint.c.scope == self.scope
        )

    def load(self) -> dict[str, dict[str, Any]]:
        """Committed request key → its state."""
        query = select(crawl_checkpoint.c.request_key, crawl_checkpoint.c.state).where(
            self._where()
        )
        with self.engine.connect() as conn:
            return {row.request_key: row.state for row in conn.execute(query)}

    def save(self, conn: Connection, states: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Record requests as committed, inside the caller's transaction."""
        now = datetime.now(UTC)
        rows = [
            {
                "worker_id": self.worker_id,
                "scope": self.scope,
                "request_key": key,
                "state": state,
                "committed_at": now,
            }
            for key, state in states
        ]
        if rows:
            upsert(conn, crawl_checkpoint, rows, classify=False)

    def clear(self) -> int:
        """Expire the range's checkpoints (it completed); returns how many were deleted."""
        with self.engine.begin() as conn:
            return conn.execute(delete(crawl_checkpoint).where(self._where())).rowcount
