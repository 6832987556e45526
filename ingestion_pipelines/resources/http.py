"""The HTTP client every scheduled crawler uses.

``HttpClientResource`` is a Dagster resource (also usable on its own) that hands out
``CrawlSession`` objects: one ``curl_cffi`` session with browser impersonation, wrapped
with a per-host rate limit (shared through Redis when ``redis_url`` is set), retries with
exponential backoff and full jitter (honouring ``Retry-After``), conditional GETs, a
response size cap, proxies, and request statistics for materialization metadata.

Nothing here reads configuration at import time, and no exception, log line or statistic
contains a proxy password or other registered secret (see ``ingestion_pipelines.redaction``).
"""

from __future__ import annotations

import email.utils
import os
import random
import re
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import dagster as dg
import orjson
from curl_cffi import requests as curl_requests
from curl_cffi.const import CurlECode, CurlOpt
from curl_cffi.curl import CURL_WRITEFUNC_ERROR
from curl_cffi.requests import exceptions as curl_exc
from loguru import logger
from pydantic import Field

from ingestion_pipelines.redaction import redact, redact_url, register_secret
from ingestion_pipelines.resources.rate_limit import (
    LocalRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    rate_limit_host,
)
from ingestion_pipelines.resources.redirects import protocol_options, send_following_redirects
from ingestion_pipelines.url_policy import PROXY_SCHEMES, check_optional_url

__all__ = [
    "CrawlSession",
    "DEFAULT_USER_AGENT",
    "HttpClientResource",
    "HttpFetchError",
    "HttpResult",
    "HttpStats",
    "MemoryValidatorStore",
    "RETRY_AFTER_CAP_S",
    "RunDeadlineExceeded",
    "ValidatorStore",
    "parse_retry_after",
]

DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
# A server's Retry-After is honoured even when longer than backoff_max_s, up to this.
RETRY_AFTER_CAP_S = 300.0
# Statuses retried with backoff; every other 4xx fails at once.
_RETRY_STATUSES = frozenset({408, 425, 429})
# Errors that a retry cannot fix.
_FATAL_ERRORS: tuple[type[BaseException], ...] = (
    curl_exc.InvalidURL,
    curl_exc.MissingSchema,
    curl_exc.InvalidSchema,
    curl_exc.InvalidHeader,
    curl_exc.TooManyRedirects,
    curl_exc.CertificateVerifyError,
    curl_exc.ImpersonateError,
    curl_exc.SessionClosed,
)
_CURL_HINT = re.compile(r"\s*See https://curl\.se/libcurl/c/libcurl-errors\.html.*$", re.S)


# --------------------------------------------------------------------------- validators


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


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class HttpResult:
    """One completed response (the last attempt's)."""

    status: int
    headers: Mapping[str, str]  # case-insensitive (curl_cffi ``Headers``)
    content: bytes
    url: str  # the final URL after redirects, as sent (not redacted)
    elapsed_s: float
    not_modified: bool = False
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400

    @property
    def encoding(self) -> str:
        content_type = self.headers.get("content-type") or ""
        match = re.search(r"charset=[\"']?([\w.:-]+)", content_type, re.I)
        return match.group(1) if match else "utf-8"

    @property
    def text(self) -> str:
        try:
            return self.content.decode(self.encoding, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return orjson.loads(self.content)


@dataclass
class HttpStats:
    """Counters of one ``CrawlSession``; ``as_metadata()`` gives JSON-ready values."""

    requests: int = 0  # attempts sent (retries included)
    retries: int = 0
    bytes: int = 0  # body bytes received (decoded), all attempts
    not_modified: int = 0
    requests_by_status: dict[str, int] = field(default_factory=dict)  # "200", "503", "error"
    rate_limit_wait_s: float = 0.0
    backoff_wait_s: float = 0.0

    def as_metadata(self) -> dict[str, Any]:
        return {
            "http_requests": self.requests,
            "http_retries": self.retries,
            "http_bytes": self.bytes,
            "http_not_modified": self.not_modified,
            "http_requests_by_status": dict(sorted(self.requests_by_status.items())),
            "http_rate_limit_wait_s": round(self.rate_limit_wait_s, 3),
            "http_backoff_wait_s": round(self.backoff_wait_s, 3),
        }


class HttpFetchError(Exception):
    """A request that failed for good. The message names the worker, the redacted URL and the cause."""

    def __init__(
        self,
        worker_id: str,
        url: str,
        cause: str,
        status: int | None = None,
        *,
        method: str | None = None,
        attempts: int | None = None,
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
        super().__init__(f"{worker_id}: {target} failed{tried}: {self.cause}")

    def __reduce__(self):  # picklable across processes
        return (
            _rebuild_fetch_error,
            (self.worker_id, self.url, self.cause, self.status, self.method, self.attempts),
        )


def _rebuild_fetch_error(worker_id, url, cause, status, method, attempts) -> HttpFetchError:
    return HttpFetchError(worker_id, url, cause, status, method=method, attempts=attempts)


class RunDeadlineExceeded(HttpFetchError):
    """The run's deadline (`run_timeout_s`) passed while a request was due or in flight: the
    message names the worker and the URL. Retrying the run would only hit it again."""

    def __reduce__(self):
        return (
            _rebuild_deadline_error,
            (self.worker_id, self.url, self.cause, self.method, self.attempts),
        )


def _rebuild_deadline_error(worker_id, url, cause, method, attempts) -> RunDeadlineExceeded:
    return RunDeadlineExceeded(worker_id, url, cause, None, method=method, attempts=attempts)


class _Retryable(Exception):
    def __init__(self, cause: str, status: int | None, retry_after_s: float | None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.status = status
        self.retry_after_s = retry_after_s


class _Fatal(Exception):
    def __init__(self, cause: str, status: int | None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.status = status


# --------------------------------------------------------------------------- helpers


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


def _status_text(status: int, reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
    return f"HTTP {status} {reason}".rstrip()


def _error_text(exc: BaseException) -> str:
    message = _CURL_HINT.sub("", str(exc)).strip().rstrip(".")
    return redact(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def _full_url(url: str, params: Mapping[str, Any] | None) -> str:
    if not params:
        return url
    query = urlencode(params, doseq=True)
    return f"{url}{'&' if urlsplit(url).query else '?'}{query}"


def _register_url_secrets(url: str | None) -> None:
    if not url:
        return
    register_secret(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.password:
        register_secret(parts.password)
        register_secret(f"{parts.username or ''}:{parts.password}")


# --------------------------------------------------------------------------- session


class CrawlSession:
    """One ``curl_cffi`` session for one worker, with rate limit, retries and stats.

    Use as a context manager (or call ``close()``). Safe to share between threads.
    """

    def __init__(
        self,
        worker_id: str,
        *,
        rate_limiter: RateLimiter,
        impersonate: str | None = "chrome",
        timeout_s: float = 30,
        proxy: str | None = None,
        rate_limit_per_s: float | None = None,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30,
        max_response_bytes: int = 50_000_000,
        validator_store: ValidatorStore | None = None,
        headers: Mapping[str, str] | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        verify_tls: bool = True,
    ) -> None:
        self.worker_id = worker_id
        self.rate_limiter = rate_limiter
        self.impersonate = impersonate or None
        self.timeout_s = float(timeout_s)
        self.rate_limit_per_s = rate_limit_per_s or None
        self.max_retries = max(0, int(max_retries))
        self.backoff_base_s = max(0.0, float(backoff_base_s))
        self.backoff_max_s = max(0.0, float(backoff_max_s))
        self.max_response_bytes = int(max_response_bytes)
        self.validator_store = validator_store
        self.stats = HttpStats()
        self._stats_lock = threading.Lock()
        self.run_timeout_s: float | None = None
        self._deadline: float | None = None  # time.monotonic() past which no request is sent
        self._log = logger.bind(worker_id=worker_id)

        proxy = proxy or None
        _register_url_secrets(proxy)
        check_optional_url(proxy, PROXY_SCHEMES, "proxy")
        self.proxy_display = redact_url(proxy) if proxy else None

        session_headers: dict[str, str] = dict(headers or {})
        if self.impersonate is None and not any(k.lower() == "user-agent" for k in session_headers):
            session_headers["User-Agent"] = user_agent
        curl_options: dict[CurlOpt, Any] = {}
        if self.max_response_bytes > 0:
            # curl refuses a response whose Content-Length is already over the cap
            curl_options[CurlOpt.MAXFILESIZE_LARGE] = self.max_response_bytes
        curl_options.update(protocol_options())  # http/https only, redirects included
        self._session = curl_requests.Session(
            impersonate=self.impersonate,
            headers=session_headers,
            proxy=proxy,
            timeout=self.timeout_s,
            verify=verify_tls,
            max_redirects=10,
            curl_options=curl_options,
        )

    # -- context manager -------------------------------------------------------------
    def __enter__(self) -> CrawlSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    def start_deadline(self, run_timeout_s: float | None) -> None:
        """From now on, no request is sent or waited for past `run_timeout_s` seconds: each
        request's timeout is cut to what is left, and one due later fails with
        `RunDeadlineExceeded` naming the worker and its URL."""
        self.run_timeout_s = run_timeout_s
        self._deadline = None if run_timeout_s is None else time.monotonic() + run_timeout_s

    def _time_left(self, method: str, shown_url: str, attempt: int) -> float | None:
        """Seconds left before the run's deadline (None: no deadline); raises when none are."""
        if self._deadline is None:
            return None
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise RunDeadlineExceeded(
                self.worker_id,
                shown_url,
                f"run deadline passed (run_timeout_s={self.run_timeout_s:g})",
                method=method,
                attempts=attempt,
            )
        return left

    # -- shortcuts -------------------------------------------------------------------
    def get(self, url: str, **kwargs: Any) -> HttpResult:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> HttpResult:
        return self.request("POST", url, **kwargs)

    # -- the request loop ------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        conditional: bool = False,
        accept_statuses: Collection[int] = (),
    ) -> HttpResult:
        """Send a request, retrying transient failures; raise ``HttpFetchError`` when it fails.

        ``conditional=True`` sends the stored validators and returns a result with
        ``not_modified=True`` (empty content) on 304. ``accept_statuses`` lists 4xx/5xx
        statuses returned as results instead of raised (e.g. ``{404}``).
        """
        method = method.upper()
        shown_url = _full_url(url, params)
        host = rate_limit_host(url)
        validator_key = shown_url
        request_headers = dict(headers or {})
        store = self.validator_store if conditional else None
        if store is not None:
            known = store.get(validator_key)
            if known:
                etag, last_modified = known
                if etag:
                    request_headers["If-None-Match"] = etag
                if last_modified:
                    request_headers["If-Modified-Since"] = last_modified

        total = self.max_retries + 1
        for attempt in range(1, total + 1):
            self._time_left(method, shown_url, attempt - 1)
            waited = self.rate_limiter.acquire(host, self.rate_limit_per_s)
            if waited:
                with self._stats_lock:
                    self.stats.rate_limit_wait_s += waited
            left = self._time_left(method, shown_url, attempt - 1)
            try:
                result = self._attempt(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=data,
                    headers=request_headers,
                    accept_statuses=accept_statuses,
                    attempt=attempt,
                    timeout_s=self.timeout_s if left is None else min(self.timeout_s, left),
                )
            except _Fatal as fatal:
                raise HttpFetchError(
                    self.worker_id,
                    shown_url,
                    fatal.cause,
                    fatal.status,
                    method=method,
                    attempts=attempt,
                ) from None
            except _Retryable as retryable:
                if attempt >= total:
                    raise HttpFetchError(
                        self.worker_id,
                        shown_url,
                        retryable.cause,
                        retryable.status,
                        method=method,
                        attempts=attempt,
                    ) from None
                delay = self._backoff(attempt, retryable.retry_after_s)
                if delay is None:
                    raise HttpFetchError(
                        self.worker_id,
                        shown_url,
                        f"{retryable.cause} (Retry-After {retryable.retry_after_s:.0f} s "
                        f"is over the {RETRY_AFTER_CAP_S:.0f} s cap)",
                        retryable.status,
                        method=method,
                        attempts=attempt,
                    ) from None
                self._log.warning(
                    "{} {} attempt {}/{} failed: {}; retrying in {:.2f} s",
                    method,
                    redact_url(shown_url),
                    attempt,
                    total,
                    redact(retryable.cause),
                    delay,
                )
                with self._stats_lock:
                    self.stats.retries += 1
                    self.stats.backoff_wait_s += delay
                left = self._time_left(method, shown_url, attempt)
                if left is not None and delay >= left:
                    raise RunDeadlineExceeded(
                        self.worker_id,
                        shown_url,
                        f"{retryable.cause}; the next attempt would start after the run "
                        f"deadline (run_timeout_s={self.run_timeout_s:g})",
                        method=method,
                        attempts=attempt,
                    ) from None
                if retryable.status == 429 or retryable.retry_after_s is not None:
                    # The server speaks for the whole host: every request to it waits (in
                    # every process sharing the limiter); this one waits in acquire().
                    self.rate_limiter.pause(host, delay)
                elif delay > 0:
                    time.sleep(delay)
                continue

            if result.not_modified:
                with self._stats_lock:
                    self.stats.not_modified += 1
            elif store is not None and result.status == 200:
                etag = result.headers.get("etag")
                last_modified = result.headers.get("last-modified")
                if etag or last_modified:
                    store.put(validator_key, etag, last_modified)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float | None:
        """Seconds to sleep before the next attempt; ``None`` when Retry-After is too long."""
        if retry_after_s is not None:
            if retry_after_s > RETRY_AFTER_CAP_S:
                return None
            return retry_after_s
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempt - 1)))
        return random.uniform(0.0, ceiling)

    def _count(self, status_key: str, body_bytes: int) -> None:
        with self._stats_lock:
            self.stats.requests += 1
            self.stats.bytes += body_bytes
            by_status = self.stats.requests_by_status
            by_status[status_key] = by_status.get(status_key, 0) + 1

    def _attempt(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        data: Any,
        headers: Mapping[str, str],
        accept_statuses: Collection[int],
        attempt: int,
        timeout_s: float,
    ) -> HttpResult:
        cap = self.max_response_bytes
        body = bytearray()
        over_cap = False

        def on_chunk(chunk: bytes) -> int:
            nonlocal over_cap
            if cap > 0 and len(body) + len(chunk) > cap:
                over_cap = True
                return CURL_WRITEFUNC_ERROR
            body.extend(chunk)
            return len(chunk)

        started = time.perf_counter()
        try:
            # Each redirect hop is checked, and secrets never follow one to another origin.
            response = send_following_redirects(
                self._session.request,
                method,  # type: ignore[arg-type]
                url,
                on_redirect=body.clear,
                params=dict(params) if params else None,
                json=json,
                data=data,
                headers=dict(headers) if headers else None,
                content_callback=on_chunk,
                timeout=timeout_s,
            )
        except curl_exc.RequestException as exc:
            self._count("error", len(body))
            code = getattr(exc, "code", None)
            if over_cap or code == CurlECode.FILESIZE_EXCEEDED:
                raise _Fatal(
                    f"response body exceeds max_response_bytes={cap}", _response_status(exc)
                ) from None
            if isinstance(exc, _FATAL_ERRORS):
                raise _Fatal(_error_text(exc), None) from None
            raise _Retryable(_error_text(exc), None, None) from None
        elapsed = time.perf_counter() - started

        status = int(response.status_code)
        self._count(str(status), len(body))
        result = HttpResult(
            status=status,
            headers=response.headers,
            content=bytes(body) if status != 304 else b"",
            url=str(response.url or url),
            elapsed_s=elapsed,
            not_modified=status == 304,
            attempts=attempt,
        )
        if status == 304 or 200 <= status < 400 or status in accept_statuses:
            return result
        cause = _status_text(status, getattr(response, "reason", None))
        if status == 407 and self.proxy_display:
            cause = f"{cause} (proxy {self.proxy_display})"
        if status in _RETRY_STATUSES or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise _Retryable(cause, status, retry_after)
        raise _Fatal(cause, status)


def _response_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return int(status) if status else None


# --------------------------------------------------------------------------- resource

_limiters: dict[tuple[str, str], RateLimiter] = {}
_limiters_lock = threading.Lock()
_local_warning_logged = False


def _shared_rate_limiter(redis_url: str | None, prefix: str) -> RateLimiter:
    """One limiter per (Redis URL, prefix) per process, so all sessions share it."""
    global _local_warning_logged
    key = (redis_url or "", prefix)
    with _limiters_lock:
        limiter = _limiters.get(key)
        if limiter is not None:
            return limiter
        if redis_url:
            import redis
            from redis.backoff import ExponentialBackoff
            from redis.retry import Retry

            _register_url_secrets(redis_url)
            client = redis.Redis.from_url(
                redis_url,
                socket_timeout=5,
                socket_connect_timeout=2,
                health_check_interval=30,
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            )
            limiter = RedisRateLimiter(client, prefix=prefix)
        else:
            limiter = LocalRateLimiter()
            if not _local_warning_logged:
                _local_warning_logged = True
                from ingestion_pipelines.resources.redis import say_no_redis

                say_no_redis("HTTP rate limits, per process only")
        _limiters[key] = limiter
        return limiter


class HttpClientResource(dg.ConfigurableResource):
    """Hands out ``CrawlSession``s; rate limits are shared through Redis when configured.

    Usable outside Dagster too: ``HttpClientResource().session("worker")``.

    ``redis_url`` left ``None`` means "use ``INGEST_REDIS_URL`` if set, at run time": a
    Dagster ``EnvVar`` fails the run when the variable is unset, which the contract allows.
    """

    redis_url: str | None = Field(
        default=None,
        description="Redis URL for per-host rate limits shared by all processes. "
        "Empty string: no Redis, limits hold per process only. None: read the variable "
        "named by redis_url_env_var when a session is opened.",
    )
    redis_url_env_var: str | None = Field(
        default="INGEST_REDIS_URL",
        description="Environment variable read at run time when redis_url is None "
        "(None: never read the environment).",
    )
    user_agent_fallback: str = Field(
        default=DEFAULT_USER_AGENT,
        description="User-Agent sent when a session does not impersonate a browser.",
    )
    rate_limit_key_prefix: str = Field(
        default="ratelimit:", description="Prefix of the Redis keys of the rate limiter."
    )
    verify_tls: bool = Field(default=True, description="Verify TLS certificates.")

    def resolved_redis_url(self) -> str | None:
        """The Redis URL in effect (``None``: no Redis), read at call time, never at import."""
        url = self.redis_url
        if url is None and self.redis_url_env_var:
            url = os.environ.get(self.redis_url_env_var)
        return (url.strip() or None) if url else None

    def rate_limiter(self) -> RateLimiter:
        return _shared_rate_limiter(self.resolved_redis_url(), self.rate_limit_key_prefix)

    def session(
        self,
        worker_id: str,
        *,
        impersonate: str | None = "chrome",
        timeout_s: float = 30,
        proxy: str | None = None,
        rate_limit_per_s: float | None = None,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30,
        max_response_bytes: int = 50_000_000,
        validator_store: ValidatorStore | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> CrawlSession:
        return CrawlSession(
            worker_id,
            rate_limiter=self.rate_limiter(),
            impersonate=impersonate,
            timeout_s=timeout_s,
            proxy=proxy,
            rate_limit_per_s=rate_limit_per_s,
            max_retries=max_retries,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            max_response_bytes=max_response_bytes,
            validator_store=validator_store,
            headers=headers,
            user_agent=self.user_agent_fallback,
            verify_tls=self.verify_tls,
        )
