"""The operator webserver: Dagster's webserver behind an authenticating proxy, with an identity
the caller cannot choose.

    python -m ingestion_pipelines.control.operator_webserver -h 0.0.0.0 -p 3000 -w workspace.yaml
    python -m ingestion_pipelines.control.operator_webserver --internal -h 0.0.0.0 -p 3000 ...

takes every option of `dagster-webserver` and serves the same app, wrapped twice:

- in the instance (`control/run_guard.py`): every run and backfill this webserver stores gets
  the run tag `ingest/identity` = the proxy's `X-Forwarded-User` of the request that made it
  (none without the header), whatever the request says; a run config holding a literal secret
  is refused before it is stored. The `config_change` job records that tag as `updated_by`.
- around the app (`control/request_gate.py`): changes only as JSON POSTs from an allowed
  `Origin` or with a custom header, GraphQL parsed (not searched), subscriptions only over the
  WebSocket; with a shared secret configured (`INGEST_PROXY_SECRET_FILE`, or
  `INGEST_PROXY_SECRET`), every request must carry it in `X-Ingest-Proxy-Secret` (the proxy
  adds it), so a container that reaches this port without the proxy gets nothing.

`--internal`: the endpoint for sidecars and run containers: reads and the asset-report REST
endpoints, no GraphQL mutation, no run, no backfill, no identity.

Allowed origins besides the page's own host: `INGEST_OPERATOR_ORIGINS` (comma-separated).
See docs/control-plane.md (*Access*) and docs/deployment.md.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from ingestion_pipelines.control import request_gate
from ingestion_pipelines.control.request_gate import Refused, header
from ingestion_pipelines.control.run_guard import (
    INTERNAL,
    OPERATOR,
    LaunchRefused,
    guard_instance,
    request_identity,
)

__all__ = ["IdentityMiddleware", "LaunchRefused", "identity_from", "main"]

IDENTITY_HEADER = "x-forwarded-user"
SECRET_HEADER = "x-ingest-proxy-secret"
MAX_IDENTITY = 128
MAX_BODY = 16 * 1024 * 1024  # as the proxy's client_max_body_size
HEALTH_PATHS = ("/server_info",)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def identity_from(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The proxy-authenticated user, or None."""
    text = (header(headers, IDENTITY_HEADER) or "").strip()
    text = "".join(ch for ch in text if ch.isprintable())[:MAX_IDENTITY]
    return text or None


def proxy_secret(environ: MutableMapping[str, str] | None = None) -> bytes | None:
    """The shared secret the proxy sends, from `INGEST_PROXY_SECRET_FILE` or
    `INGEST_PROXY_SECRET`; None when neither is set."""
    environ = os.environ if environ is None else environ
    path = environ.get("INGEST_PROXY_SECRET_FILE")
    value = Path(path).read_text().strip() if path else environ.get("INGEST_PROXY_SECRET", "")
    if path and not value:
        raise SystemExit(f"operator_webserver: the proxy secret file {path} is empty")
    return value.strip().encode() or None


def allowed_origins(environ: MutableMapping[str, str] | None = None) -> frozenset[str]:
    """`INGEST_OPERATOR_ORIGINS`: origins (scheme://host[:port]) allowed besides the page's."""
    environ = os.environ if environ is None else environ
    raw = environ.get("INGEST_OPERATOR_ORIGINS", "")
    return frozenset(o.strip().rstrip("/") for o in raw.split(",") if o.strip())


class IdentityMiddleware:
    """ASGI wrapper of Dagster's webserver app (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        path_prefix: str = "",
        *,
        role: str = OPERATOR,
        secret: bytes | None = None,
        origins: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.prefix = path_prefix.rstrip("/")
        self.role = role
        self.secret = secret
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers") or [])
        try:
            body = await self._admit(scope, headers, receive)
        except Refused as refused:
            await _refuse(scope, send, refused)
            return
        if scope["type"] == "websocket":
            receive = _subscriptions_only(receive, send)
        elif body is not None:
            receive = _replay(body, receive)
        identity = identity_from(headers) if self.role == OPERATOR else None
        with request_identity(identity):
            await self.app(scope, receive, send)

    async def _admit(self, scope: Scope, headers, receive: Receive) -> bytes | None:
        """Raise `Refused` for a request that must not pass; the body when it was read."""
        path = scope["path"]
        method = scope.get("method", "GET")
        if not (method == "GET" and path.rstrip("/") in self._paths(HEALTH_PATHS)):
            request_gate.check_proxy_secret(headers, self.secret, SECRET_HEADER)
        websocket = scope["type"] == "websocket"
        if websocket or method not in request_gate.SAFE_METHODS:
            request_gate.check_origin(headers, self.origins, websocket=websocket)
        if websocket or path.rstrip("/") not in self._paths(("/graphql",)):
            return None
        query_string = scope.get("query_string", b"")
        if method in ("GET", "HEAD"):
            request_gate.check_graphql_get(query_string)
            return None
        body = await _read_body(receive)
        request_gate.check_graphql_post(
            header(headers, "content-type"),
            query_string,
            body,
            mutations=self.role == OPERATOR,
        )
        return body

    def _paths(self, paths: tuple[str, ...]) -> set[str]:
        return {f"{self.prefix}{p}" for p in paths}


def _subscriptions_only(upstream: Receive, send: Send) -> Receive:
    """The client's WebSocket messages, the connection closed at the first that is not a
    subscription (the app then sees a disconnect)."""

    async def receive() -> MutableMapping[str, Any]:
        message = await upstream()
        if message["type"] != "websocket.receive":
            return message
        try:
            request_gate.check_websocket_message(message.get("text") or message.get("bytes"))
        except Refused:
            await send({"type": "websocket.close", "code": 4403})
            return {"type": "websocket.disconnect", "code": 4403}
        return message

    return receive


async def _read_body(receive: Receive) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise Refused(413, f"a GraphQL request is at most {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, upstream: Receive) -> Receive:
    """The body already read, then the client's own messages (its disconnect)."""
    sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await upstream()

    return receive


async def _refuse(scope: Scope, send: Send, refused: Refused) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4403})
        return
    body = json.dumps({"errors": [{"message": str(refused)}]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refused.status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> None:
    """`dagster-webserver`'s command line (plus `--internal`), serving its app inside
    `IdentityMiddleware`, its instance guarded by `run_guard`."""
    import dagster_webserver.cli as webserver_cli

    args = list(sys.argv[1:] if argv is None else argv)
    role = INTERNAL if "--internal" in args else OPERATOR
    args = [a for a in args if a != "--internal"]
    secret = proxy_secret() if role == OPERATOR else None
    if role == OPERATOR and secret is None:
        print(
            "operator_webserver: no INGEST_PROXY_SECRET_FILE: X-Forwarded-User is believed from "
            "whoever reaches this port; bind it to 127.0.0.1 behind the proxy",
            file=sys.stderr,
        )
    origins = allowed_origins()
    create_app = webserver_cli.create_app_from_workspace_process_context

    def wrapped(context, path_prefix, *more, **kwargs):
        guard_instance(context.instance, role)
        app = create_app(context, path_prefix, *more, **kwargs)
        return IdentityMiddleware(app, path_prefix, role=role, secret=secret, origins=origins)

    webserver_cli.create_app_from_workspace_process_context = wrapped
    webserver_cli.cli.main(args=args, prog_name="operator_webserver")


if __name__ == "__main__":
    main()
