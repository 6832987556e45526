"""`op` for this project's migration scripts: Alembic's operations, bound per thread.

Alembic's own `alembic.op` and `alembic.context` are module-global proxies. Dagster's storages
install them too when they create or stamp their tables, from whatever thread of the same
process they run in (a run's SQLite event log, while our execution_log writer migrates from its
own thread): the scripts' operations would then run on Dagster's connection, or on none. Our
scripts import `op` from here instead; `storage.migrate` binds it for the running thread only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

_bound = threading.local()


class _ThreadOperations:
    """Forwards to the `Operations` bound to the calling thread by `bound_to`."""

    def __getattr__(self, name: str) -> Any:
        operations = getattr(_bound, "operations", None)
        if operations is None:
            raise RuntimeError(
                "migration operations used outside ingestion_pipelines.storage.migrate"
            )
        return getattr(operations, name)


op: Any = _ThreadOperations()


@contextmanager
def bound_to(context: MigrationContext) -> Iterator[None]:
    """Bind `op` to `context` for the calling thread while the block runs."""
    _bound.operations = Operations(context)
    try:
        yield
    finally:
        _bound.operations = None
