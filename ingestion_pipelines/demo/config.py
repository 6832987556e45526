"""The demo's settings, kept in the config chain rather than in one process's environment, so
`ingest config get` in any shell tells what the demo really uses.

`make demo` writes them once, as `worker_config` rows signed `DEMO_AUTHOR` (each row records
who wrote it and when: `ingest config list` shows them): per worker the replay's URLs, and one
global `cron`. `make up` (the live sources) deletes the rows the demo wrote and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select

from ingestion_pipelines.config.chain import ConfigChain
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import worker_config

DEMO_AUTHOR = "make demo (python -m ingestion_pipelines.demo.run --replay)"
_PREFIX = "INGEST_"


def demo_settings(env: Mapping[str, str]) -> list[tuple[str | None, str, str]]:
    """(worker or None for a global row, key, value) for every `INGEST_<WORKER>__<KEY>` and
    `INGEST_<KEY>` of `env` naming a setting a worker has."""
    from ingestion_pipelines.config.workers import catalogue

    specs = catalogue()
    global_keys = {key for spec in specs.values() for key in spec.settings.model_fields}
    rows: list[tuple[str | None, str, str]] = []
    for name, value in env.items():
        if not name.startswith(_PREFIX):
            continue
        worker, _, key = name[len(_PREFIX) :].lower().rpartition("__")
        if worker and worker in specs and key in specs[worker].settings.model_fields:
            rows.append((worker, key, value))
        elif not worker and key in global_keys:
            rows.append((None, key, value))
    return rows


def write_demo_config(database_url: str, env: Mapping[str, str]) -> list[tuple[Any, ...]]:
    """Write the demo's settings as rows (validated, signed `DEMO_AUTHOR`); returns what changed
    as (worker, key, old, new). Rows already holding the value are left alone."""
    chain = ConfigChain(database_url, environ={})
    changed = []
    current = {(r["worker_id"], r["key"]): r["value"] for r in chain.rows()}
    for worker, key, value in demo_settings(env):
        if current.get((worker, key)) == value:
            continue
        old, new = chain.set(worker, key, value, updated_by=DEMO_AUTHOR)
        changed.append((worker, key, old, new))
    return changed


def clear_demo_config(database_url: str) -> int:
    """Delete the rows the demo wrote (a later `make up` must use the live sources)."""
    engine = ensure_schema(database_url)
    with engine.begin() as conn:
        ids = [
            row.id
            for row in conn.execute(
                select(worker_config.c.id).where(worker_config.c.updated_by == DEMO_AUTHOR)
            )
        ]
        if ids:
            conn.execute(delete(worker_config).where(worker_config.c.id.in_(ids)))
    return len(ids)
