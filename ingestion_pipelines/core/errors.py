"""One error hierarchy. Every failure the platform raises on purpose is an `IngestError`, which
says whether trying again later may succeed (`transient`); Dagster's retry decision, the sidecar's
writer and the CLI read that instead of guessing from exception types.
"""

from __future__ import annotations


class IngestError(Exception):
    """Root of the platform's errors. `transient`: the same work may succeed later (a server
    overloaded, a database restarting); deterministic failures (a 404, a bad payload, bad
    config) are not retried."""

    transient: bool = False

    def __init__(self, message: str = "", *, transient: bool | None = None) -> None:
        super().__init__(message)
        if transient is not None:
            self.transient = transient


def is_transient(error: BaseException) -> bool:
    """Whether `error` may go away by itself: the error's own word when it is an `IngestError`,
    else true only for connection-level failures (refused, reset, timed out)."""
    if isinstance(error, IngestError):
        return error.transient
    return isinstance(error, ConnectionError | TimeoutError)
