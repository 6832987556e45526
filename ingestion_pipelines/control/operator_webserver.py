"""The operator webserver: Dagster's webserver behind an authenticating proxy, with an identity
the caller cannot choose.

    python -m ingestion_pipelines.control.operator_webserver -h 0.0.0.0 -p 3001 -w workspace.yaml

takes every option of `dagster-webserver` and serves the same app, wrapped so that on every
GraphQL launch (runs, re-executions, backfills) the run tag `ingest/identity` is the value of
the proxy's `X-Forwarded-User` header, and is removed when that header is absent; a caller-set
`ingest/identity` never survives. The `config_change` job records that tag as `updated_by`
(what the caller says in `requested_by` is kept apart, as a claim). The wrapper also refuses,
before Dagster stores anything, a launch whose run config holds a literal secret (a secret key
of `config_change` not given as `{"env": "NAME"}`, or a URL with a password).

The header is only trustworthy when this webserver is reachable through the proxy alone (bind
it to 127.0.0.1 or a private network; the proxy must overwrite the header): see
docs/control-plane.md.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import yaml

from ingestion_pipelines.config import ConfigError, env_reference, url_with_password
from ingestion_pipelines.dagster_api.names import IDENTITY_TAG
from ingestion_pipelines.errors import IngestError

IDENTITY_HEADER = "x-forwarded-user"
MAX_IDENTITY = 128
CONFIG_OP = "apply_config_change"
_LAUNCH_WORDS = ("launch", "reexecut", "backfill")
_TAG_LISTS = ("tags", "extraTags")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class LaunchRefused(IngestError, ValueError):
    """A launch this webserver will not pass to Dagster (the message says why)."""


def identity_from(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The proxy-authenticated user, or None."""
    for name, value in headers:
        if name.lower() == IDENTITY_HEADER.encode():
            text = value.decode("utf-8", "replace").strip()
            text = "".join(ch for ch in text if ch.isprintable())[:MAX_IDENTITY]
            return text or None
    return None


def _retag(tags: list[Any], identity: str | None) -> list[Any]:
    kept = [t for t in tags if not (isinstance(t, dict) and t.get("key") == IDENTITY_TAG)]
    if identity:
        kept.append({"key": IDENTITY_TAG, "value": identity})
    return kept


def stamp_identity(node: Any, identity: str | None) -> Any:
    """GraphQL variables with every `tags` / `extraTags` list re-tagged, and the identity added
    to launches that carry no tags at all."""
    if isinstance(node, list):
        return [stamp_identity(item, identity) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: _retag(value, identity)
        if key in _TAG_LISTS and isinstance(value, list)
        else stamp_identity(value, identity)
        for key, value in node.items()
    }
    if identity:
        params = out.get("executionParams")
        if isinstance(params, dict):
            metadata = params.setdefault("executionMetadata", {})
            if isinstance(metadata, dict):
                metadata.setdefault("tags", _retag([], identity))
        reexecution = out.get("reexecutionParams")
        if isinstance(reexecution, dict):
            reexecution.setdefault("extraTags", _retag([], identity))
    return out


def _run_configs(node: Any):
    """Every `runConfigData` in GraphQL variables, decoded (it may be YAML text)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "runConfigData":
                yield yaml.safe_load(value) if isinstance(value, str) else value
            else:
                yield from _run_configs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _run_configs(item)


def check_run_config(run_config: Any) -> None:
    """Raise `LaunchRefused` when a run config would store a secret in the instance: a secret
    key given literally (to a worker's op or to `config_change`), or a URL with a password."""
    if not isinstance(run_config, dict):
        return
    ops = run_config.get("ops")
    for op_name, op in ops.items() if isinstance(ops, dict) else ():
        config = op.get("config") if isinstance(op, dict) else None
        if not isinstance(config, dict):
            continue
        if op_name == CONFIG_OP:
            _check_config_change(config)
        else:
            for key in _secret_keys() & set(config):
                if config[key] is not None and env_reference(config[key]) is None:
                    raise LaunchRefused(_literal_secret(key))
    if _holds_url_password(run_config):
        raise LaunchRefused(
            "the run config holds a URL with a password: URL passwords are secrets, set them "
            "in the environment of the workers"
        )


def _secret_keys() -> set[str]:
    from ingestion_pipelines.workers import catalogue

    return {key for spec in catalogue().values() for key in spec.settings.secret_keys()}


def _literal_secret(key: str) -> str:
    return (
        f'{key} is a secret: give it as {{"env": "NAME"}} (a variable set where the workers '
        "run); a literal would be stored in the run's config"
    )


def _check_config_change(change: dict[str, Any]) -> None:
    if change.get("unset") or change.get("value") is None:
        return
    from ingestion_pipelines.control.defs import GLOBAL, secret_key

    worker = change.get("worker_id")
    worker = None if worker in (None, "", GLOBAL) else worker
    try:
        value = json.loads(change["value"])
    except (TypeError, ValueError):
        value = change["value"]
    try:
        is_secret = secret_key(worker, str(change.get("key")))
    except KeyError:
        return  # an unknown worker: the job itself says so
    if is_secret and env_reference(value) is None:
        raise LaunchRefused(_literal_secret(str(change.get("key"))))


def _holds_url_password(node: Any) -> bool:
    if isinstance(node, dict):
        return any(_holds_url_password(v) for v in node.values())
    if isinstance(node, list):
        return any(_holds_url_password(v) for v in node)
    if isinstance(node, str):
        if url_with_password(node):
            return True
        try:  # config_change carries its value as JSON text
            return "://" in node and _holds_url_password(json.loads(node))
        except ValueError:
            return False
    return False


def rewrite_graphql(body: bytes, identity: str | None) -> bytes:
    """The request body to pass on: launches re-tagged; `LaunchRefused` for what must not pass."""
    try:
        data = json.loads(body)
    except ValueError:
        return body  # Dagster answers "invalid JSON" itself
    if not isinstance(data, dict):
        return body
    query = str(data.get("query") or "")
    if IDENTITY_TAG in query:
        raise LaunchRefused(f"the tag {IDENTITY_TAG} is set by the authenticating proxy only")
    if not any(word in query.lower() for word in _LAUNCH_WORDS):
        return body
    variables = data.get("variables")
    if isinstance(variables, str):
        try:
            variables = json.loads(variables)
        except ValueError:
            return body
    for run_config in _run_configs(variables):
        try:
            check_run_config(run_config)
        except ConfigError as exc:
            raise LaunchRefused(str(exc)) from None
    data["variables"] = stamp_identity(variables or {}, identity)
    return json.dumps(data).encode()


def _refusal(message: str) -> tuple[int, bytes]:
    return 403, json.dumps({"errors": [{"message": message}]}).encode()


class IdentityMiddleware:
    """ASGI wrapper of Dagster's webserver app (see the module docstring)."""

    def __init__(self, app: ASGIApp, path_prefix: str = "") -> None:
        self.app = app
        self.graphql_path = f"{path_prefix.rstrip('/')}/graphql"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != self.graphql_path:
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers") or [])
        content_type = dict(headers).get(b"content-type", b"").decode("latin-1")
        if scope["method"] != "POST" or "application/json" not in content_type:
            # GraphiQL's page is fine; a query in the URL or a non-JSON body is read-only here
            query = scope.get("query_string", b"").decode("latin-1").lower()
            body = await _read_body(receive) if scope["method"] == "POST" else b""
            text = query + body.decode("utf-8", "replace").lower()
            if "mutation" in text:
                await _answer(send, *_refusal("mutations must be POSTed as JSON"))
                return
            await self.app(scope, _replay(body, receive), send)
            return
        body = await _read_body(receive)
        try:
            body = rewrite_graphql(body, identity_from(headers))
        except LaunchRefused as exc:
            await _answer(send, *_refusal(str(exc)))
            return
        scope = dict(scope)
        scope["headers"] = [(k, v) for k, v in headers if k.lower() != b"content-length"] + [
            (b"content-length", str(len(body)).encode())
        ]
        await self.app(scope, _replay(body, receive), send)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
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


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> None:
    """`dagster-webserver`'s command line, serving its app inside `IdentityMiddleware`."""
    import dagster_webserver.cli as webserver_cli

    create_app = webserver_cli.create_app_from_workspace_process_context

    def wrapped(context, path_prefix, *args, **kwargs):
        return IdentityMiddleware(create_app(context, path_prefix, *args, **kwargs), path_prefix)

    webserver_cli.create_app_from_workspace_process_context = wrapped
    webserver_cli.cli.main(args=argv, prog_name="operator_webserver")


if __name__ == "__main__":
    main()
