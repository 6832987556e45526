"""Crawl checkpoints: which requests of a partitioned crawl have committed their rows.

A checkpoint is keyed by the run's logical work (worker, partition range, request identity), not
by run id, so Dagster's re-execution, a run retry and `ingest trigger` of the same range all
resume. A request is checkpointed in the transaction that commits its last rows (or right after,
when the data tables live in another database: a crash in between re-fetches one batch, which the
idempotent upsert makes harmless). Its state keeps what the request yielded besides rows, so a
resumed run re-creates the follow-up requests, the source's totals and the run's counts exactly.
The checkpoints of a range are deleted when the range completes. A range that never completes
expires: every crawl of a worker first deletes the worker's ranges untouched for `checkpoint_ttl_s`
(default 7 days), then refreshes the `committed_at` of its own range's checkpoints as it loads them.
Since `checkpoint_ttl_s` may not be shorter than `run_timeout_s`, a range whose run is running
was touched less than a TTL ago and is never expired under it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from loguru import logger
from sqlalchemy import Connection, Engine, delete, func, select, update

from ingestion_pipelines.sources.base import Request, Window
from ingestion_pipelines.storage.tables import crawl_checkpoint
from ingestion_pipelines.storage.upsert import upsert

DEFAULT_TTL_S = 7 * 86400.0  # the `checkpoint_ttl_s` default


def _now() -> datetime:
    return datetime.now(UTC)


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

    def __init__(self, engine: Engine, worker_id: str, scope: str, ttl_s: float = DEFAULT_TTL_S):
        self.engine = engine
        self.worker_id = worker_id
        self.scope = scope
        self.ttl_s = ttl_s

    def _where(self):
        return (crawl_checkpoint.c.worker_id == self.worker_id) & (
            crawl_checkpoint.c.scope == self.scope
        )

    def load(self) -> dict[str, dict[str, Any]]:
        """Committed request key → its state, once the worker's stale ranges have expired; the
        range's checkpoints are touched (`committed_at` now), so no other run expires them
        while this one runs."""
        self.expire_stale()
        query = select(crawl_checkpoint.c.request_key, crawl_checkpoint.c.state).where(
            self._where()
        )
        with self.engine.begin() as conn:
            conn.execute(update(crawl_checkpoint).where(self._where()).values(committed_at=_now()))
            return {row.request_key: row.state for row in conn.execute(query)}

    def expire_stale(self) -> list[str]:
        """Delete the worker's ranges (this one included) whose newest checkpoint is older than
        the TTL; returns their scopes. A range touched since is left alone."""
        cutoff = _now() - timedelta(seconds=self.ttl_s)
        of_worker = crawl_checkpoint.c.worker_id == self.worker_id
        stale_scopes = (
            select(crawl_checkpoint.c.scope)
            .where(of_worker)
            .group_by(crawl_checkpoint.c.scope)
            .having(func.max(crawl_checkpoint.c.committed_at) < cutoff)
        )
        with self.engine.begin() as conn:
            scopes = list(conn.execute(stale_scopes).scalars())
            for scope in scopes:
                # `committed_at < cutoff` again: a run that touched the range since keeps it.
                conn.execute(
                    delete(crawl_checkpoint).where(
                        of_worker,
                        crawl_checkpoint.c.scope == scope,
                        crawl_checkpoint.c.committed_at < cutoff,
                    )
                )
        if scopes:
            logger.bind(worker_id=self.worker_id).info(
                "expired the checkpoints of {} range(s) untouched for {:g} s: {}",
                len(scopes),
                self.ttl_s,
                ", ".join(scopes),
            )
        return scopes

    def save(self, conn: Connection, states: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Record requests as committed, inside the caller's transaction."""
        now = _now()
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
