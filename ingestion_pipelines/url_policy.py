"""Which URL schemes each kind of connection may use: the one allow-list of the project.

Checked when a value is validated (settings models: environment, `worker_config`, run config,
`config set`) and again by every client just before it connects (the HTTP client, its
redirects, the sidecar's websocket and its REST gap fill), so that a `dict://`, `gopher://` or
`file://` URL never reaches libcurl or a socket.
"""

from __future__ import annotations

import urllib.request
from urllib.parse import urlsplit

from ingestion_pipelines.errors import IngestError
from ingestion_pipelines.redaction import redact_url

CRAWL_SCHEMES = frozenset({"http", "https"})  # crawls, REST gap fill, alert webhooks
FEED_SCHEMES = frozenset({"ws", "wss"})
PROXY_SCHEMES = frozenset({"http", "https", "socks5", "socks5h"})
DATABASE_SCHEMES = frozenset({"sqlite", "mysql", "mariadb", "postgresql", "postgres"})

# libcurl's own protocol restriction for requests and redirects (CURLOPT_PROTOCOLS_STR).
CURL_PROTOCOLS = ",".join(sorted(CRAWL_SCHEMES))


class UnsafeUrlError(IngestError, ValueError):
    """A URL whose scheme is not allowed for its use (or that is no URL at all)."""


def scheme_of(url: str) -> str:
    """The URL's scheme, lower case, without a SQLAlchemy driver suffix (`mysql+pymysql`)."""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return ""
    return scheme.split("+", 1)[0]


def check_url(url: str, allowed: frozenset[str], what: str = "URL") -> str:
    """Return `url` when its scheme is in `allowed` and it names a host; else `UnsafeUrlError`."""
    scheme = scheme_of(url)
    allowed_text = "/".join(sorted(allowed))
    if scheme not in allowed:
        shown = f"{scheme}://" if scheme else "no scheme"
        raise UnsafeUrlError(
            f"{what} {redact_url(url)!r}: scheme {shown} is not allowed (only {allowed_text})"
        )
    if scheme not in DATABASE_SCHEMES and not urlsplit(url.strip()).hostname:
        raise UnsafeUrlError(f"{what} {redact_url(url)!r} names no host")
    return url


def check_optional_url(url: str | None, allowed: frozenset[str], what: str = "URL") -> str | None:
    """`check_url` for settings that may be empty (empty: nothing to check)."""
    if url is None or url == "":
        return url
    return check_url(url, allowed, what)


def check_path_or_url(value: str, allowed: frozenset[str], what: str = "URL") -> str:
    """A path appended to a base URL, or a full URL (then its scheme must be allowed)."""
    if "://" in value or ":" in value.split("/", 1)[0]:
        return check_url(value, allowed, what)
    return value


def same_origin(a: str, b: str) -> bool:
    """Same scheme, host and port: credentials and secret headers may follow a redirect."""
    first, second = urlsplit(a), urlsplit(b)
    return (first.scheme.lower(), first.hostname, _port(first)) == (
        second.scheme.lower(),
        second.hostname,
        _port(second),
    )


def _port(parts) -> int | None:
    try:
        port = parts.port
    except ValueError:
        return None
    if port is None:
        return {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme.lower())
    return port


class SafeRedirectHandler(urllib.request.HTTPRedirectHandler):
    """urllib's redirect handler, following only http/https (urllib would also follow ftp)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl, CRAWL_SCHEMES, "redirect target")
        return super().redirect_request(req, fp, code, msg, headers, newurl)
