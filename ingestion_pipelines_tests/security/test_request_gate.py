"""The operator webserver's request rules as plain functions (the attacks themselves are replayed
against a real webserver in test_identity.py)."""

from __future__ import annotations

import json

import pytest

from ingestion_pipelines.control.operator_webserver import allowed_origins, proxy_secret
from ingestion_pipelines.control.request_gate import (
    Refused,
    check_origin,
    check_websocket_message,
    operation_types,
)


def _headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode()) for k, v in values.items()]


def test_the_proxy_secret_comes_from_a_file_or_the_environment(tmp_path):
    path = tmp_path / "secret"
    path.write_text("s3cret-from-file\n")
    assert proxy_secret({"INGEST_PROXY_SECRET_FILE": str(path)}) == b"s3cret-from-file"
    assert proxy_secret({"INGEST_PROXY_SECRET": " s3cret-env "}) == b"s3cret-env"
    assert proxy_secret({}) is None
    path.write_text("\n")
    with pytest.raises(SystemExit, match="empty"):
        proxy_secret({"INGEST_PROXY_SECRET_FILE": str(path)})


def test_origins_the_page_itself_the_allow_list_or_a_custom_header():
    allowed = allowed_origins({"INGEST_OPERATOR_ORIGINS": "https://ops.example.com/, "})
    assert allowed == {"https://ops.example.com"}
    check_origin(_headers(origin="https://ops.example.com", host="10.0.0.5:3001"), allowed)
    check_origin(_headers(origin="http://10.0.0.5:3001", host="10.0.0.5:3001"), allowed)
    check_origin(_headers(x_requested_with="ingest"), allowed)
    check_origin(_headers(dagster_client="x"), allowed)
    for headers in (
        _headers(origin="http://10.0.0.5:3001.evil.example", host="10.0.0.5:3001"),
        _headers(origin="null", host="10.0.0.5:3001"),
        _headers(origin="https://evil.example", x_requested_with="x"),
        _headers(sec_fetch_site="cross-site", x_requested_with="x"),
        _headers(),
    ):
        with pytest.raises(Refused):
            check_origin(headers, allowed)


def test_graphql_is_parsed_not_searched():
    assert operation_types("{ version }") == {"query"}
    assert operation_types("query A { version } mutation B { x }") == {"query", "mutation"}
    assert operation_types('query { a(s: "mutation {") }') == {"query"}
    assert operation_types("# mutation\n{ version }") == {"query"}
    for bad in ("mutation {", None, 3, "   "):
        with pytest.raises(Refused):
            operation_types(bad)


def test_websocket_messages_start_subscriptions_only():
    check_websocket_message(json.dumps({"type": "connection_init", "payload": {}}))
    start = {"id": "1", "type": "start", "payload": {"query": "subscription { x }"}}
    check_websocket_message(json.dumps(start))
    for query in ("mutation { x }", "{ version }", "subscription { x } mutation { y }"):
        with pytest.raises(Refused):
            check_websocket_message(json.dumps({**start, "payload": {"query": query}}))
    with pytest.raises(Refused):
        check_websocket_message(json.dumps({"type": "subscribe", "payload": {}}))
