"""How a request fails: `HttpFetchError` for good (naming worker, redacted URL and cause), and
the two outcomes of one attempt (`RetryableAttempt`, `FatalAttempt`) the session loop decides on."""

from __future__ import annotations

import re
from http import HTTPStatus

from curl_cffi.requests import exceptions as curl_exc

from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.core.redaction import redact, redact_url
from ingestion_pipelines.core.retry import is_retryable_status

_CURL_HINT = re.compile(r"\s*See https://curl\.se/libcurl/c/libcurl-errors\.html.*$", re.S)


# Errors that a retry cannot fix.
FATAL_CURL_ERRORS: tuple[type[BaseException], ...] = (
    curl_exc.InvalidURL,
    curl_exc.MissingSchema,
    curl_exc.InvalidSchema,
    curl_exc.InvalidHeader,
    curl_exc.TooManyRedirects,
    curl_exc.CertificateVerifyError,
    curl_exc.ImpersonateError,
    curl_exc.SessionClosed,
)


class HttpFetchError(IngestError):
    """A request that failed for good. The message names the worker, the redacted URL and the cause.

    `transient`: the last attempt failed the way a later run may not (a 5xx, a 429, a dropped
    connection), unlike a 404, a bad URL or an oversized body; by default it follows the status."""

    def __init__(
        self,
        worker_id: str,
        url: str,
        cause: str,
        status: int | None = None,
        *,
        method: str | None = None,
        attempts: int | None = None,
        transient: bool | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.url = redact_url(url)
        self.cause = redact(cause)
        self.status = status
        self.method = method
        self.attempts = attempts
        target = f"{method} {self.url}" if method else self.url
        tried = ""
        if attempts is not None:
            tried = f" after {attempts} attempt{'s' if attempts != 1 else ''}"
        super().__init__(
            f"{worker_id}: {target} failed{tried}: {self.cause}",
            transient=(
                transient
                if transient is not None
                else status is not None and is_retryable_status(status)
            ),
        )

    def __reduce__(self):  # picklable across processes
        return (
            _rebuild_fetch_error,
            (
                self.worker_id,
                self.url,
                self.cause,
                self.status,
                self.method,
                self.attempts,
                self.transient,
            ),
        )


def _rebuild_fetch_error(
    worker_id, url, cause, status, method, attempts, transient
) -> HttpFetchError:
    return HttpFetchError(
        worker_id, url, cause, status, method=method, attempts=attempts, transient=transient
    )


class RunDeadlineExceeded(HttpFetchError):
    """The run's deadline (`run_timeout_s`) passed while a request was due or in flight: the
    message names the worker and the URL. Retrying the run would only hit it again."""

    def __init__(self, worker_id: str, url: str, cause: str, status: int | None = None, **kw):
        super().__init__(worker_id, url, cause, status, **{**kw, "transient": False})

    def __reduce__(self):
        return (
            _rebuild_deadline_error,
            (self.worker_id, self.url, self.cause, self.method, self.attempts),
        )


def _rebuild_deadline_error(worker_id, url, cause, method, attempts) -> RunDeadlineExceeded:
    return RunDeadlineExceeded(worker_id, url, cause, None, method=method, attempts=attempts)


class RetryableAttempt(Exception):
    """One attempt failed in a way worth trying again (`retry_after_s`: the server's word)."""

    def __init__(self, cause: str, status: int | None, retry_after_s: float | None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.status = status
        self.retry_after_s = retry_after_s


class FatalAttempt(Exception):
    """One attempt failed in a way no retry can fix."""

    def __init__(self, cause: str, status: int | None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.status = status


def status_text(status: int, reason: str | None) -> str:
    """`HTTP 503 Service Unavailable`: the server's reason, else the standard phrase."""
    reason = (reason or "").strip()
    if not reason:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
    return f"HTTP {status} {reason}".rstrip()


def error_text(exc: BaseException) -> str:
    """A transport error as `Type: message`, without curl's help link, secrets redacted."""
    message = _CURL_HINT.sub("", str(exc)).strip().rstrip(".")
    return redact(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def response_status(exc: BaseException) -> int | None:
    """The HTTP status carried by a curl_cffi exception, if any."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return int(status) if status else None
