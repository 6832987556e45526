"""ETag / Last-Modified of earlier responses, kept in `http_validator` per worker and URL.

They are loaded before a crawl and saved only after its rows are committed: were they saved on
receipt, a run failing after the fetch would make the next one skip the data on a 304.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from ingestion_pipelines.storage.tables import http_validator
from ingestion_pipelines.storage.upsert import upsert


class MemoryValidatorStore:
    """A thread-safe in-memory validator store (the HTTP client's `ValidatorStore` protocol):
    `get(url)` gives the (ETag, Last-Modified) kept by `put`. Defined here, below `resources/`,
    so that the storage layer does not import the HTTP client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, tuple[str | None, str | None]] = {}

    def get(self, url: str) -> tuple[str | None, str | None] | None:
        """The validators kept for `url`, or None."""
        with self._lock:
            return self._data.get(url)

    def put(self, url: str, etag: str | None, last_modified: str | None) -> None:
        """Keep the validators of `url`'s latest response."""
        with self._lock:
            self._data[url] = (etag, last_modified)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


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
