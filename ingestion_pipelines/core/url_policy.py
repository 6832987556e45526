"""Which URL schemes each kind of connection may use: the one allow-list of the project.

Checked when a value is validated (settings models: environment, `worker_config`, run config,
`config set`) and again by every client just before it connects (the HTTP client, its
redirects, the sidecar's websocket and its REST gap fill), so that a `dict://`, `gopher://` or
`file://` URL never reaches libcurl or a socket.

Redirects to loopback, private, link-local or otherwise non-public addresses (literal, or what a
name resolves to) are refused by `check_redirect_target`, per INGEST_HTTP_PRIVATE_REDIRECTS:

    auto    (default) refused when the hop that redirects is on a public address (a live
            source); followed when it is itself local (`ingest replay`, a test origin, a source
            deliberately on the local network), which the replays and tests need
    refuse  always refused
    allow   always followed (the behaviour before issue 22)

The configured URL itself is not checked here: it is the operator's choice, validated by scheme.
A name is resolved when checked and again by libcurl when it connects; a DNS answer changing in
between (rebinding) is not caught here.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.request
from urllib.parse import urlsplit

from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.core.redaction import redact_url

CRAWL_SCHEMES = frozenset({"http", "https"})  # crawls, REST gap fill, alert webhooks
FEED_SCHEMES = frozenset({"ws", "wss"})
PROXY_SCHEMES = frozenset({"http", "https", "socks5", "socks5h"})
DATABASE_SCHEMES = frozenset({"sqlite", "mysql", "mariadb", "postgresql", "postgres"})

# libcurl's own protocol restriction for requests and redirects (CURLOPT_PROTOCOLS_STR).
CURL_PROTOCOLS = ",".join(sorted(CRAWL_SCHEMES))


PRIVATE_REDIRECT_MODES = ("auto", "refuse", "allow")


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


def _not_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return not (mapped or ip).is_global


def private_address(host: str | None) -> str | None:
    """The first address `host` is, or resolves to, that is not public (loopback, private,
    link-local, shared, reserved...); None when every one is public or the name does not resolve
    (the connection then fails on its own)."""
    if not host:
        return None
    host = host.strip("[]")
    try:
        return host if _not_public(host) else None
    except ValueError:
        pass  # a name
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    for info in infos:
        address = str(info[4][0])
        if _not_public(address):
            return address
    return None


def private_redirect_mode(mode: str | None = None) -> str:
    """`mode`, or INGEST_HTTP_PRIVATE_REDIRECTS (default `auto`), checked."""
    if mode is None:
        from ingestion_pipelines.core.settings import get_settings

        mode = get_settings().http_private_redirects or "auto"
    mode = mode.strip().lower()
    if mode not in PRIVATE_REDIRECT_MODES:
        raise UnsafeUrlError(
            f"INGEST_HTTP_PRIVATE_REDIRECTS={mode!r}: one of {', '.join(PRIVATE_REDIRECT_MODES)}"
        )
    return mode


def check_redirect_target(here: str, target: str, mode: str | None = None) -> str:
    """`target` when a redirect from `here` may go there; `UnsafeUrlError` when it names a
    non-public address and the mode refuses it (see the module's docstring)."""
    check_url(target, CRAWL_SCHEMES, "redirect target")
    mode = private_redirect_mode(mode)
    if mode == "allow":
        return target
    if mode == "auto" and private_address(urlsplit(here).hostname) is not None:
        return target  # a local origin (replay, test) may redirect locally
    address = private_address(urlsplit(target).hostname)
    if address is not None:
        raise UnsafeUrlError(
            f"redirect target {redact_url(target)!r} is a non-public address ({address}): "
            f"refused (INGEST_HTTP_PRIVATE_REDIRECTS={mode})"
        )
    return target


class SafeRedirectHandler(urllib.request.HTTPRedirectHandler):
    """urllib's redirect handler, following only http/https (urllib would also follow ftp),
    and not to non-public addresses unless INGEST_HTTP_PRIVATE_REDIRECTS allows it."""

    def __init__(self, private_redirects: str | None = None) -> None:
        super().__init__()
        self.private_redirects = private_redirects

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_redirect_target(req.full_url, newurl, self.private_redirects)
        return super().redirect_request(req, fp, code, msg, headers, newurl)
