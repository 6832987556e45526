"""Failures that say what failed: the worker, the (redacted) URL and the underlying cause.

After Dagster's retries the run's step failure reads "Exceeded max_retries of 3", with the real
reason one or more `cause` links below; `error_text` (Dagster's `SerializableErrorInfo`) and
`graphql_error_text` (the same error read over GraphQL) flatten the chain into one line for the
run failure shown by `ingest trigger --wait` and for alerts. `storage_failure` turns a database
error raised during a crawl (the database went away mid-run, a value it refused) into an error
naming the worker, the database and the source's URL, with the driver's own code and message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.core.redaction import redact, redact_url

CAUSE_SEPARATOR = " <- cause: "
MAX_TEXT = 1000
_NOISE = ("The above exception was", "Error occurred while executing")
# "dagster._core.definitions.events.Failure: ..." -> "Failure: ..."
_QUALIFIED = re.compile(r"^(?:[A-Za-z_][\w]*\.)+([A-Za-z_]\w*: )")


class StorageError(IngestError, RuntimeError):
    """A database error during a worker's run: the message names worker, database and URL.
    Transient (connection lost, server gone away): Dagster's RetryPolicy tries the run again."""

    transient = True


def _chain_text(messages: Iterable[str | None]) -> str:
    parts: list[str] = []
    for message in messages:
        text = _QUALIFIED.sub(r"\1", " ".join((message or "").split()))
        if not text or any(text.startswith(noise) for noise in _NOISE) or text in parts:
            continue
        parts.append(text)
    return redact(CAUSE_SEPARATOR.join(parts))[:MAX_TEXT]


def error_text(error: Any) -> str:
    """A `SerializableErrorInfo` and every cause below it, as one line (secrets redacted)."""
    messages = []
    seen = 0
    while error is not None and seen < 10:
        messages.append(getattr(error, "message", None))
        error = getattr(error, "cause", None) or getattr(error, "context", None)
        seen += 1
    return _chain_text(messages)


def graphql_error_text(error: Mapping[str, Any] | None) -> str:
    """A GraphQL `PythonError` (`message` and `causes { message }`) as one line."""
    if not error:
        return ""
    causes = [c.get("message") for c in error.get("causes") or [] if isinstance(c, Mapping)]
    return _chain_text([error.get("message"), *causes])


def storage_failure(worker_id: str, database_url: str, source_url: str, exc: Exception):
    """The error to raise for a database error `exc` met while `worker_id` crawled
    `source_url`: a retryable `StorageError` when the database was unreachable, otherwise a
    `dg.Failure` without retries (a refused statement fails the same way every time)."""
    import dagster as dg
    from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

    orig = getattr(exc, "orig", None) or exc
    cause = f"{type(orig).__name__}: {orig}"
    message = redact(
        f"{worker_id}: database {redact_url(database_url)} failed while crawling "
        f"{redact_url(source_url)}: {cause}"
    )
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError):
        return StorageError(message)
    return dg.Failure(description=message, allow_retries=False)
