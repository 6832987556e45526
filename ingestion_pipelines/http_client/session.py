"""`CrawlSession`: one `curl_cffi` session for one worker with browser impersonation, a per-host
rate limit, retries through `ingestion_pipelines.core.retry` (full jitter, `Retry-After`), conditional
GETs, a response size cap, proxies, a run deadline and request statistics."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from curl_cffi import requests as curl_requests
from curl_cffi.const import CurlECode, CurlOpt
from curl_cffi.curl import CURL_WRITEFUNC_ERROR
from curl_cffi.requests import exceptions as curl_exc
from loguru import logger

from ingestion_pipelines.core.redaction import redact, redact_url, register_secret
from ingestion_pipelines.core.retry import full_jitter, is_retryable_status, parse_retry_after
from ingestion_pipelines.core.url_policy import (
    PROXY_SCHEMES,
    check_optional_url,
    private_redirect_mode,
)
from ingestion_pipelines.http_client.errors import (
    FATAL_CURL_ERRORS,
    FatalAttempt,
    HttpFetchError,
    RetryableAttempt,
    RunDeadlineExceeded,
    error_text,
    response_status,
    status_text,
)
from ingestion_pipelines.http_client.results import HttpResult, HttpStats
from ingestion_pipelines.http_client.validators import ValidatorStore
from ingestion_pipelines.resources.rate_limit import (
    RateLimiter,
    rate_limit_host,
)
from ingestion_pipelines.resources.redirects import protocol_options, send_following_redirects

DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)


# A server's Retry-After is honoured even when longer than backoff_max_s, up to this.
RETRY_AFTER_CAP_S = 300.0


def _full_url(url: str, params: Mapping[str, Any] | None) -> str:
    if not params:
        return url
    query = urlencode(params, doseq=True)
    return f"{url}{'&' if urlsplit(url).query else '?'}{query}"


def _with_validators(
    headers: Mapping[str, str] | None, store: ValidatorStore | None, key: str
) -> dict[str, str]:
    """The request's headers plus the stored ETag / Last-Modified when the GET is conditional."""
    request_headers = dict(headers or {})
    known = store.get(key) if store is not None else None
    if known:
        etag, last_modified = known
        if etag:
            request_headers["If-None-Match"] = etag
        if last_modified:
            request_headers["If-Modified-Since"] = last_modified
    return request_headers


def register_url_secrets(url: str | None) -> None:
    """Register a URL (a proxy's, Redis's) and its password as secrets, so logs never show them."""
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
        private_redirects: str | None = None,
    ) -> None:
        self.worker_id = worker_id
        # auto / refuse / allow (None: INGEST_HTTP_PRIVATE_REDIRECTS); see url_policy
        self.private_redirects = private_redirect_mode(private_redirects)
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
        register_url_secrets(proxy)
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

    def adopt_clearance(self, cookies: list[dict[str, Any]], user_agent: str) -> None:
        """Send from now on the cookies a browser got by passing an anti-bot challenge, with
        that browser's exact User-Agent (clearances are bound to it): see `browser.clearance`.
        Cookies are in Playwright's / FlareSolverr's shape (name, value, domain, path)."""
        for cookie in cookies:
            domain = str(cookie.get("domain") or "")
            self._session.cookies.set(
                str(cookie["name"]),
                str(cookie["value"]),
                domain=domain,
                path=cookie.get("path") or "/",
            )
        if user_agent:
            self._session.headers["User-Agent"] = user_agent

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
        store = self.validator_store if conditional else None
        request_headers = _with_validators(headers, store, shown_url)
        total = self.max_retries + 1
        for attempt in range(1, total + 1):
            self._time_left(method, shown_url, attempt - 1)
            waited = self.rate_limiter.acquire(host, self.rate_limit_per_s)
            if waited:
                with self._stats_lock:
                    self.stats.rate_limit_wait_s += waited
            left = self._time_left(method, shown_url, attempt - 1)
            sent_at = time.perf_counter()
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
            except FatalAttempt as fatal:
                self._observe_latency(sent_at)
                raise self._failure(
                    method, shown_url, attempt, fatal.cause, fatal.status, transient=False
                ) from None
            except RetryableAttempt as retryable:
                self._observe_latency(sent_at)
                if attempt >= total:
                    raise self._failure(
                        method,
                        shown_url,
                        attempt,
                        retryable.cause,
                        retryable.status,
                        transient=True,
                    ) from None
                self._wait_before_retry(method, shown_url, host, attempt, retryable)
                continue
            self._observe_latency(sent_at)
            self._remember(result, store, shown_url)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _observe_latency(self, sent_at: float) -> None:
        with self._stats_lock:
            self.stats.observe_latency(time.perf_counter() - sent_at)

    def _failure(
        self,
        method: str,
        shown_url: str,
        attempt: int,
        cause: str,
        status: int | None,
        *,
        transient: bool = True,
    ) -> HttpFetchError:
        return HttpFetchError(
            self.worker_id,
            shown_url,
            cause,
            status,
            method=method,
            attempts=attempt,
            transient=transient,
        )

    def _wait_before_retry(
        self, method: str, shown_url: str, host: str, attempt: int, retryable: RetryableAttempt
    ) -> None:
        """Wait out the backoff (or the server's Retry-After) before the next attempt; raise
        when the wait is over the cap or would end past the run's deadline."""
        retry_after_s = retryable.retry_after_s
        if retry_after_s is not None and retry_after_s > RETRY_AFTER_CAP_S:
            raise self._failure(
                method,
                shown_url,
                attempt,
                f"{retryable.cause} (Retry-After {retry_after_s:.0f} s "
                f"is over the {RETRY_AFTER_CAP_S:.0f} s cap)",
                retryable.status,
            ) from None
        if retry_after_s is not None:
            delay = retry_after_s
        else:
            delay = full_jitter(attempt, self.backoff_base_s, self.backoff_max_s)
        self._log.warning(
            "{} {} attempt {}/{} failed: {}; retrying in {:.2f} s",
            method,
            redact_url(shown_url),
            attempt,
            self.max_retries + 1,
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
        if retryable.status == 429 or retry_after_s is not None:
            # The server speaks for the whole host: every request to it waits (in
            # every process sharing the limiter); this one waits in acquire().
            self.rate_limiter.pause(host, delay)
        elif delay > 0:
            time.sleep(delay)

    def _remember(self, result: HttpResult, store: ValidatorStore | None, key: str) -> None:
        """Count a 304, or keep a 200's validators for the next conditional GET."""
        if result.not_modified:
            with self._stats_lock:
                self.stats.not_modified += 1
        elif store is not None and result.status == 200:
            etag = result.headers.get("etag")
            last_modified = result.headers.get("last-modified")
            if etag or last_modified:
                store.put(key, etag, last_modified)

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
                private_redirects=self.private_redirects,
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
                raise FatalAttempt(
                    f"response body exceeds max_response_bytes={cap}", response_status(exc)
                ) from None
            if isinstance(exc, FATAL_CURL_ERRORS):
                raise FatalAttempt(error_text(exc), None) from None
            raise RetryableAttempt(error_text(exc), None, None) from None
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
        cause = status_text(status, getattr(response, "reason", None))
        if status == 407 and self.proxy_display:
            cause = f"{cause} (proxy {self.proxy_display})"
        if is_retryable_status(status):
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise RetryableAttempt(cause, status, retry_after)
        raise FatalAttempt(cause, status)
