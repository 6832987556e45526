"""Where the ETag / Last-Modified of earlier responses are kept for conditional GETs."""

from __future__ import annotations

from typing import Protocol

from ingestion_pipelines.storage.validators import MemoryValidatorStore

__all__ = ["MemoryValidatorStore", "ValidatorStore"]


class ValidatorStore(Protocol):
    """Where the ETag / Last-Modified of earlier responses are kept, keyed by URL."""

    def get(self, url: str) -> tuple[str | None, str | None] | None: ...

    def put(self, url: str, etag: str | None, last_modified: str | None) -> None: ...
