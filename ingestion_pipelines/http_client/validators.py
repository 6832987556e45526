"""Where the ETag / Last-Modified of earlier responses are kept for conditional GETs."""

from __future__ import annotations

import threading
from typing import Protocol


class ValidatorStore(Protocol):
    """Where the ETag / Last-Modified of earlier responses are kept, keyed by URL."""

    def get(self, url: str) -> tuple[str | None, str | None] | None: ...

    def put(self, url: str, etag: str | None, last_modified: str | None) -> None: ...


class MemoryValidatorStore:
    """A thread-safe in-memory ``ValidatorStore``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, tuple[str | None, str | None]] = {}

    def get(self, url: str) -> tuple[str | None, str | None] | None:
        with self._lock:
            return self._data.get(url)

    def put(self, url: str, etag: str | None, last_modified: str | None) -> None:
        with self._lock:
            self._data[url] = (etag, last_modified)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)
