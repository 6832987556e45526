"""Redirects followed by the HTTP client itself, so that every hop is checked.

libcurl follows a redirect with the same custom headers, whatever the host: an API-key header
would reach whoever the first server points at. Here each hop is sent with redirects off; the
target's scheme must be allowed (`url_policy`), and when the target is another origin only the
harmless headers go on (no Authorization, Cookie, API keys or any header we do not know to be
safe). libcurl's own protocol list is restricted too (`protocol_options`), as a second wall.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin

from curl_cffi.const import CurlOpt
from curl_cffi.requests import exceptions as curl_exc

from ingestion_pipelines.core.url_policy import (
    CRAWL_SCHEMES,
    CURL_PROTOCOLS,
    UnsafeUrlError,
    check_redirect_target,
    check_url,
    same_origin,
)

MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Headers that may follow a redirect to another origin; every other one is dropped there.
CROSS_ORIGIN_HEADERS = frozenset(
    {"user-agent", "accept", "accept-language", "accept-encoding", "cache-control", "pragma"}
)


def protocol_options() -> dict[CurlOpt, str]:
    """libcurl options allowing only http/https for requests and for redirects."""
    return {CurlOpt.PROTOCOLS_STR: CURL_PROTOCOLS, CurlOpt.REDIR_PROTOCOLS_STR: CURL_PROTOCOLS}


def checked(url: str) -> str:
    """`url` when its scheme is allowed for a crawl; else curl_cffi's `InvalidSchema` (fatal)."""
    try:
        return check_url(url, CRAWL_SCHEMES)
    except UnsafeUrlError as exc:
        raise curl_exc.InvalidSchema(str(exc)) from None


def checked_redirect(here: str, target: str, private_redirects: str | None) -> str:
    """`target` when a redirect from `here` may go there (scheme, non-public addresses per
    `url_policy.check_redirect_target`); else curl_cffi's `InvalidSchema` (fatal)."""
    try:
        return check_redirect_target(here, target, private_redirects)
    except UnsafeUrlError as exc:
        raise curl_exc.InvalidSchema(str(exc)) from None


def cross_origin_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers that may go to another origin."""
    return {k: v for k, v in headers.items() if k.lower() in CROSS_ORIGIN_HEADERS}


def send_following_redirects(
    send: Callable[..., Any],
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    data: Any = None,
    on_redirect: Callable[[], None] | None = None,
    max_redirects: int = MAX_REDIRECTS,
    private_redirects: str | None = None,
    **kwargs: Any,
) -> Any:
    """`send(method, url, ...)` (a curl_cffi `Session.request`) hop by hop, redirects off.

    `on_redirect` is called before each further hop (the caller drops the redirect's body).
    `private_redirects`: auto/refuse/allow (None: INGEST_HTTP_PRIVATE_REDIRECTS; `url_policy`).
    """
    hop_headers = dict(headers or {})
    for _ in range(max_redirects + 1):
        checked(url)
        response = send(
            method,
            url,
            params=params,
            json=json,
            data=data,
            headers=hop_headers or None,
            allow_redirects=False,
            **kwargs,
        )
        status = int(response.status_code)
        location = response.headers.get("location")
        if status not in REDIRECT_STATUSES or not location:
            return response
        here = str(response.url or url)
        target = checked_redirect(here, urljoin(here, location), private_redirects)
        if not same_origin(here, target):
            hop_headers = cross_origin_headers(hop_headers)
        if status == 303 or (status in (301, 302) and method == "POST"):
            method, json, data = "GET", None, None
        params = None  # the first hop's query is part of `here`; Location is complete
        url = target
        if on_redirect is not None:
            on_redirect()
    raise curl_exc.TooManyRedirects(f"more than {max_redirects} redirects")
