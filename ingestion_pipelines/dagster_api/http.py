"""JSON and GraphQL over HTTP to one Dagster webserver, with the standard library only.

Shared by the control plane (`dagster_api.client`), the sidecar's reporter and the feed switches;
nothing here imports Dagster.
"""

import base64
import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.core.redaction import redact, redact_url, register_secret
from ingestion_pipelines.core.retry import is_retryable_status

USER_AGENT = "ingestion_pipelines-sidecar"


class DagsterHttpError(IngestError):
    """A request to the Dagster webserver failed. `transient`: worth retrying later."""

    def __init__(self, message: str, *, status: int | None = None, transient: bool = True):
        super().__init__(message)
        self.status = status
        self.transient = transient


class DagsterHttp:
    """JSON over HTTP to one Dagster webserver (stdlib only). Credentials in the URL
    (`http://user:password@host:3000`) are sent as Basic auth and never appear in messages."""

    def __init__(self, dagster_url: str, *, timeout_s: float = 5.0):
        parts = urllib.parse.urlsplit(dagster_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL for Dagster: {redact_url(dagster_url)}")
        self.headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            # Not a browser: the operator webserver's cross-site protection wants a custom
            # header on every change (control/request_gate.py).
            "X-Requested-With": "ingestion_pipelines",
        }
        if parts.username or parts.password:
            user = urllib.parse.unquote(parts.username or "")
            password = urllib.parse.unquote(parts.password or "")
            register_secret(password)
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            register_secret(token)
            self.headers["Authorization"] = f"Basic {token}"
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
        self.base_url = urllib.parse.urlunsplit(
            (parts.scheme, netloc, parts.path.rstrip("/"), "", "")
        )
        self.timeout_s = timeout_s

    @property
    def display_url(self) -> str:
        """The URL safe to show (it never has credentials)."""
        return self.base_url

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def post_json(self, path: str, body: Mapping[str, Any]) -> Any:
        """POST `body` as JSON to `path`; the decoded JSON answer. Raises `DagsterHttpError`."""
        data = json.dumps(body).encode()
        request = urllib.request.Request(
            self.url(path), data=data, headers=self.headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = ""
            with contextlib.suppress(Exception):  # the body is only for the message
                detail = exc.read().decode("utf-8", "replace")[:300]
            transient = is_retryable_status(exc.code)
            raise DagsterHttpError(
                redact(f"HTTP {exc.code} from {self.url(path)}: {detail}".strip()),
                status=exc.code,
                transient=transient,
            ) from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DagsterHttpError(
                redact(f"{self.url(path)} unreachable: {reason}"), transient=True
            ) from None
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise DagsterHttpError(
                redact(f"{self.url(path)} answered with non-JSON: {raw[:200]!r}"), transient=True
            ) from None

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run a GraphQL operation; its `data`. GraphQL errors raise `DagsterHttpError`."""
        answer = self.post_json("graphql", {"query": query, "variables": dict(variables or {})})
        if not isinstance(answer, dict):
            raise DagsterHttpError(f"unexpected GraphQL answer from {self.display_url}")
        if answer.get("errors"):
            messages = "; ".join(str(e.get("message", e)) for e in answer["errors"])
            raise DagsterHttpError(redact(f"GraphQL error: {messages}"[:500]), transient=False)
        return answer.get("data") or {}
