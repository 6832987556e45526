"""ETag / Last-Modified of earlier responses, kept in `http_validator` per worker and URL.

They are loaded before a crawl and saved only after its rows are committed: were they saved on
receipt, a run failing after the fetch would make the next one skip the data on a 304.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select

from ingestion_pipelines.http_client.validators import MemoryValidatorStore
from ingestion_pipelines.storage.tables import http_validator
from ingestion_pipelines.storage.upsert import upsert


class PersistentValidators(MemoryValidatorStore):
    """A validator store for one crawl: `load()` from the database, `save()` after the commit."""

    def __init__(self, engine: Engine, worker_id: str):
        super().__init__()
        self.engine = engine
        self.worker_id = worker_id

    def load(self) -> PersistentValidators:
        """Read the stored validators into memory; returns self."""
        query = select(http_validator).where(http_validator.c.worker_id == self.worker_id)
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                super().put(row.url, row.etag, row.last_modified)
        return self

    def save(self) -> None:
        """Write the validators learned in this run."""
        with self._lock:
            items = list(self._data.items())
        now = datetime.now(UTC)
        rows = [
            {
                "worker_id": self.worker_id,
                "url": url[:700],
                "etag": etag,
                "last_modified": modified,
                "updated_at": now,
            }
            for url, (etag, modified) in items
        ]
        upsert(self.engine, http_validator, rows)
