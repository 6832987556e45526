"""Which HTTP requests the operator (and internal) webserver passes to Dagster.

Plain functions over what a request carries; `operator_webserver` applies them. Each raises
`Refused` (an HTTP status and a message) for a request that must not reach Dagster:

- a change (any method but GET/HEAD/OPTIONS, on any path) must come from an allowed `Origin`
  (the page's own host, or one of `allowed_origins`) or, without an `Origin`, carry a custom
  header (`X-Requested-With` or a `Dagster-*` header): a cross-site page can do neither without
  the server's consent, so it cannot ride a browser's cached password;
- a GraphQL mutation only as `POST` with `Content-Type: application/json`, one request object
  (no batch), its query text present and parseable, nothing of it in the URL. GraphQL is parsed
  (graphql-core), never searched for words: `GET /graphql?query=%6Dutation...` is a mutation;
- over the `/graphql` WebSocket, subscriptions only;
- on the internal endpoint, no mutation at all.
"""

from __future__ import annotations

import hmac
import json
import urllib.parse
from collections.abc import Iterable
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode, parse

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
URL_GRAPHQL_KEYS = frozenset({"query", "variables", "operationName", "extensions"})


class Refused(Exception):
    """A request refused before Dagster sees it: `status` and a message safe to show."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def header(headers: Iterable[tuple[bytes, bytes]], name: str) -> str | None:
    """The first value of header `name` (case-insensitive), or None."""
    wanted = name.lower().encode()
    for key, value in headers:
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None


def check_proxy_secret(headers, expected: bytes | None, header_name: str) -> None:
    """With a shared secret configured, refuse a request that does not carry it (constant-time
    comparison; the secret itself never appears in a message)."""
    if expected is None:
        return
    given = (header(headers, header_name) or "").encode("latin-1")
    if not hmac.compare_digest(given, expected):
        raise Refused(403, "this webserver answers only through the authenticating proxy")


def check_origin(headers, allowed_origins: frozenset[str], *, websocket: bool = False) -> None:
    """Refuse a foreign `Origin`; for a change without `Origin`, require a custom header."""
    origin = header(headers, "origin")
    if origin is not None:
        if origin.rstrip("/") in allowed_origins:
            return
        netloc = urllib.parse.urlsplit(origin).netloc
        if netloc and netloc == (header(headers, "host") or ""):
            return
        raise Refused(403, f"requests from {origin[:100]!r} are not allowed here")
    if (header(headers, "sec-fetch-site") or "") == "cross-site":
        raise Refused(403, "cross-site requests are not allowed here")
    if websocket:
        return
    if header(headers, "x-requested-with") is not None:
        return
    if any(key.lower().startswith(b"dagster-") for key, _ in headers):
        return
    raise Refused(
        403,
        "a change needs an allowed Origin or an X-Requested-With header (cross-site protection)",
    )


def operation_types(query: Any) -> set[str]:
    """The operation types (`query`, `mutation`, `subscription`) of a GraphQL document.
    Raises `Refused` for one that is not text or does not parse."""
    if not isinstance(query, str) or not query.strip():
        raise Refused(400, "a GraphQL request needs its query text (no persisted queries here)")
    try:
        document = parse(query, no_location=True)
    except GraphQLError as exc:
        raise Refused(400, f"not a GraphQL document: {exc.message[:200]}") from None
    return {
        d.operation.value for d in document.definitions if isinstance(d, OperationDefinitionNode)
    }


def check_graphql_get(query_string: bytes) -> None:
    """A GraphQL request in the URL: queries only (the URL is decoded first)."""
    params = urllib.parse.parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    for text in params.get("query", []):
        if operation_types(text) - {"query"}:
            raise Refused(403, "mutations must be POSTed as JSON")


def check_graphql_post(
    content_type: str | None, query_string: bytes, body: bytes, *, mutations: bool
) -> None:
    """A GraphQL POST: JSON, one operation object, nothing in the URL; `mutations`: allowed."""
    params = urllib.parse.parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    if URL_GRAPHQL_KEYS & params.keys():
        raise Refused(403, "a GraphQL POST carries its query in the JSON body, not in the URL")
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise Refused(415, "GraphQL is POSTed as application/json here")
    try:
        data = json.loads(body)
    except ValueError:
        raise Refused(400, "the GraphQL request is not valid JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, "one GraphQL request per POST (no batches)")
    kinds = operation_types(data.get("query"))
    if "mutation" in kinds and not mutations:
        raise Refused(403, "this endpoint is read-only: changes go through the operator UI")


def check_websocket_message(text: str | None) -> None:
    """A message from a GraphQL WebSocket client: an operation must be a subscription."""
    try:
        message = json.loads(text or "")
    except ValueError:
        raise Refused(400, "not a GraphQL WebSocket message") from None
    if not isinstance(message, dict):
        raise Refused(400, "not a GraphQL WebSocket message")
    if message.get("type") in ("start", "subscribe"):
        payload = message.get("payload")
        query = payload.get("query") if isinstance(payload, dict) else None
        if operation_types(query) != {"subscription"}:
            raise Refused(403, "only subscriptions over the WebSocket; changes are POSTed")
