"""Issue 22 §1: who did what must be true. Each attack of the security review, replayed as it
was found against the operator webserver (real dagster-webserver, real instance), must now fail:
the run carries the identity of the proxy's `X-Forwarded-User` and nothing else, and a change
arrives only as a JSON POST a cross-site page cannot send."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from ingestion_pipelines.dagster_api.client import operation
from ingestion_pipelines_tests.security.conftest import PROXIED, request

IDENTITY = "ingest/identity"
CHANGE = {"worker_id": "fear_greed", "key": "timeout_s", "value": "12"}
SELECT = (
    'selector: {repositoryLocationName: "ingestion_pipelines", '
    'repositoryName: "__repository__", jobName: "config_change"}'
)
CONFIG = 'runConfigData: {ops: {apply_config_change: {config: {worker_id: "fear_greed", key: "timeout_s", value: "12"}}}}'
ESCAPED_TAG = (
    "mutation { launchRun(executionParams: {"
    + SELECT
    + ", "
    + CONFIG
    + r', executionMetadata: {tags: [{key: "ingest\u002Fidentity", value: "alice"}]}})'
    + " { __typename ... on LaunchRunSuccess { run { runId } } } }"
)
TAG_VARIABLE = (
    "mutation ($t: ExecutionTag!) { launchRun(executionParams: {"
    + SELECT
    + ", "
    + CONFIG
    + ", executionMetadata: {tags: [$t]}}) { __typename ... on LaunchRunSuccess { run { runId } } } }"
)


def _run_id(status, answer) -> str:
    assert status == 200, answer
    launched = answer["data"]["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def test_an_escaped_identity_tag_in_the_query_is_replaced_by_the_proxys_user(operator):
    run_id = _run_id(*operator.post(ESCAPED_TAG, user="bob"))
    assert operator.tags(run_id)[IDENTITY] == "bob"


def test_an_identity_tag_in_a_variable_is_replaced_by_the_proxys_user(operator):
    tag = {"key": IDENTITY, "value": "alice"}
    run_id = _run_id(*operator.post(TAG_VARIABLE, {"t": tag}, user="bob"))
    assert operator.tags(run_id)[IDENTITY] == "bob"
    # and without the header there is no identity at all, never the caller's
    run_id = _run_id(*operator.post(TAG_VARIABLE, {"t": tag}))
    assert IDENTITY not in operator.tags(run_id)


def test_a_reexecution_takes_the_identity_of_who_asked_for_it(operator):
    config = {"ops": {"apply_config_change": {"config": CHANGE}}}
    parent = _run_id(*operator.launch("config_change", config, user="alice"))
    query = """mutation ($p: ReexecutionParams!) { launchRunReexecution(reexecutionParams: $p) {
      __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
    params = {
        "parentRunId": parent,
        "strategy": "ALL_STEPS",
        "extraTags": [{"key": IDENTITY, "value": "alice"}],
    }
    status, answer = operator.post(query, {"p": params}, user="bob")
    assert status == 200, answer
    child = answer["data"]["launchRunReexecution"]["run"]["runId"]
    assert operator.tags(child)[IDENTITY] == "bob"


def test_a_backfill_is_stamped_too(operator):
    params = {
        "partitionsByAssets": [
            {
                "assetKey": {"path": ["fear_greed"]},
                "partitions": {"range": {"start": "2026-01-05", "end": "2026-01-06"}},
            }
        ],
        "tags": [{"key": IDENTITY, "value": "alice"}],
    }
    status, answer = operator.post(operation("LaunchBackfill"), {"backfillParams": params}, "bob")
    assert status == 200, answer
    launched = answer["data"]["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    query = "query ($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { tags { key value } } } }"
    backfill = operator.stack.graphql(query, {"id": launched["backfillId"]})
    tags = {t["key"]: t["value"] for t in backfill["partitionBackfillOrError"]["tags"]}
    assert tags[IDENTITY] == "bob"


# ---- mutations only as JSON POSTs a cross-site page cannot send ----------------------------


def _launch_text(tags="[]") -> str:
    return (
        "mutation { launchRun(executionParams: {"
        + SELECT
        + ", "
        + CONFIG
        + f", executionMetadata: {{tags: {tags}}}}}) {{ __typename }} }}"
    )


def test_a_url_encoded_mutation_in_a_get_is_refused(operator):
    before = operator.run_ids()
    encoded = urllib.parse.quote(_launch_text()).replace("mutation", "%6Dutation")
    for query in (encoded, urllib.parse.quote(_launch_text())):
        status, answer = request(
            "GET", f"{operator.stack.url}/graphql?query={query}", None, PROXIED
        )
        assert status == 403, answer
    assert operator.run_ids() == before


def test_a_mutation_in_the_url_of_a_text_or_form_post_is_refused(operator):
    before = operator.run_ids()
    plain = urllib.parse.quote(_launch_text())
    for query in (plain.replace("mutation", "%6Dutation"), plain):
        url = f"{operator.stack.url}/graphql?query={query}"
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/json"):
            status, _ = operator.post_body(b"", "bob", {"Content-Type": content_type}, url=url)
            assert status in (403, 415)
    for content_type, body in (
        ("text/plain", json.dumps({"query": _launch_text()}).encode()),
        ("application/graphql", _launch_text().encode()),
        ("multipart/form-data; boundary=x", _launch_text().encode()),
    ):
        status, _ = operator.post_body(body, "bob", {"Content-Type": content_type})
        assert status == 415
    assert operator.run_ids() == before


def test_a_cross_site_post_is_refused(operator):
    before = operator.run_ids()
    body = {"query": _launch_text()}
    # a page elsewhere, riding the browser's cached password: foreign Origin, no custom header
    for headers in (
        {"Origin": "https://evil.example", "X-Requested-With": None},
        {"Origin": "https://evil.example"},
        {"Origin": None, "X-Requested-With": None},
        {"X-Requested-With": None, "Sec-Fetch-Site": "cross-site"},
    ):
        status, answer = operator.post_body(body, "bob", headers)
        assert status == 403, (headers, answer)
    assert operator.run_ids() == before
    # the UI itself: its own origin (Origin's host = Host), no custom header needed
    host = urllib.parse.urlsplit(operator.stack.url).netloc
    status, answer = operator.post_body(
        body, "bob", {"Origin": f"http://{host}", "X-Requested-With": None}
    )
    assert status == 200 and answer["data"]["launchRun"]["__typename"] == "LaunchRunSuccess"


def test_batches_persisted_queries_and_garbage_are_refused(operator):
    before = operator.run_ids()
    attempts = [
        [{"query": _launch_text()}],
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}},
        {"query": 42},
        {"query": "mutation {"},
    ]
    for body in attempts:
        status, _ = operator.post_body(body, "bob")
        assert status == 400, body
    assert operator.run_ids() == before


def test_the_websocket_serves_subscriptions_only(operator):
    host = urllib.parse.urlsplit(operator.stack.url).netloc
    headers = {**PROXIED, "X-Forwarded-User": "bob"}
    before = operator.run_ids()
    with connect(
        f"ws://{host}/graphql", subprotocols=["graphql-ws"], additional_headers=headers
    ) as ws:
        ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
        ws.send(json.dumps({"id": "1", "type": "start", "payload": {"query": _launch_text()}}))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    assert operator.run_ids() == before
    # a foreign page cannot open it at all
    foreign = {**headers, "Origin": "https://evil.example"}
    with pytest.raises(InvalidStatus, match="403"):
        connect(f"ws://{host}/graphql", subprotocols=["graphql-ws"], additional_headers=foreign)


# ---- only through the proxy ---------------------------------------------------------------


def test_without_the_proxys_secret_nothing_but_the_health_check_answers(operator):
    before = operator.run_ids()
    for secret in (None, "wrong", PROXIED["X-Ingest-Proxy-Secret"][:-1]):
        status, answer = operator.post_body(
            {"query": _launch_text()}, "alice", {"X-Ingest-Proxy-Secret": secret}
        )
        assert status == 403 and "proxy" in answer["errors"][0]["message"]
        assert PROXIED["X-Ingest-Proxy-Secret"] not in json.dumps(answer)
    assert operator.run_ids() == before
    assert request("GET", f"{operator.stack.url}/server_info")[0] == 200
    assert request("GET", f"{operator.stack.url}/graphql?query=%7Bversion%7D")[0] == 403


def test_the_internal_endpoint_reads_reports_and_records_no_identity(operator, internal_url):
    before = operator.run_ids()
    status, answer = operator.post_body(
        {"query": _launch_text()}, "alice", url=f"{internal_url}/graphql"
    )
    assert status == 403 and "read-only" in answer["errors"][0]["message"]
    assert operator.run_ids() == before
    # reads and the sidecar's reports work
    status, answer = operator.post_body({"query": "{ version }"}, url=f"{internal_url}/graphql")
    assert status == 200 and answer["data"]["version"]
    status, answer = request(
        "POST",
        f"{internal_url}/report_asset_observation/fear_greed",
        json.dumps({"metadata": {"status": "running"}}).encode(),
        {"Content-Type": "application/json", "X-Requested-With": "ingest"},
    )
    assert status == 200, answer
