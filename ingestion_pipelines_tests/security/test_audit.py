"""Item 3: an audit trail the caller cannot spoof. The identity is the authenticating proxy's
`X-Forwarded-User`, stamped on the run by the operator webserver; what the caller says
(`requested_by`) is kept apart, as a claim."""

from __future__ import annotations

import dagster as dg

from ingestion_pipelines.config.chain import ConfigChain
from ingestion_pipelines.control.defs import config_change_job
from ingestion_pipelines.resources.worker_config import WorkerConfigResource

IDENTITY = "ingest/identity"
CHANGE = {"worker_id": "fear_greed", "key": "timeout_s", "value": "11", "requested_by": "root"}


def _tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["tags"]}


def test_the_proxys_user_is_the_identity_whatever_the_caller_says(operator):
    spoof = {IDENTITY: "mallory", "ingest/requested_by": "mallory"}
    config = {"ops": {"apply_config_change": {"config": CHANGE}}}
    status, answer = operator.launch("config_change", config, spoof, user="alice")
    assert status == 200, answer
    run_id = answer["data"]["launchRun"]["run"]["runId"]
    tags = _tags(operator.run(run_id))
    assert tags[IDENTITY] == "alice"
    assert tags["ingest/requested_by"] == "mallory"  # kept, as a claim

    # no header (a caller that bypassed the proxy): no identity at all, never the caller's
    status, answer = operator.launch("config_change", config, spoof)
    assert status == 200, answer
    tags = _tags(operator.run(answer["data"]["launchRun"]["run"]["runId"]))
    assert IDENTITY not in tags


def test_an_identity_written_into_the_query_itself_is_replaced(operator):
    query = (
        "mutation { launchRun(executionParams: {selector: {repositoryLocationName: "
        '"ingestion_pipelines", repositoryName: "__repository__", jobName: "config_change"}, '
        'runConfigData: {ops: {apply_config_change: {config: {worker_id: "fear_greed", '
        'key: "timeout_s", value: "11"}}}}, executionMetadata: {tags: [{key: "ingest/identity", '
        'value: "mallory"}]}}) { ... on LaunchRunSuccess { run { runId } } } }'
    )
    status, answer = operator.post(query, user="alice")
    assert status == 200, answer
    assert _tags(operator.run(answer["data"]["launchRun"]["run"]["runId"]))[IDENTITY] == "alice"


def _change(url: str, tags: dict[str, str]) -> dg.ExecuteInProcessResult:
    return config_change_job.execute_in_process(
        run_config={"ops": {"apply_config_change": {"config": CHANGE}}},
        resources={"worker_config": WorkerConfigResource(database_url=url)},
        instance=dg.DagsterInstance.ephemeral(),
        tags=tags,
    )


def test_updated_by_is_the_identity_and_the_claim_is_recorded_apart(sqlite_url):
    result = _change(sqlite_url, {IDENTITY: "alice", "ingest/requested_by": "mallory"})
    [row] = ConfigChain(sqlite_url).rows("fear_greed")
    assert row["updated_by"].startswith("alice (dagster run ")
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    meta = {k: v.value for k, v in output.step_output_data.metadata.items()}
    assert (meta["identity"], meta["requested_by"]) == ("alice", "root")

    _change(sqlite_url, {"ingest/requested_by": "mallory"})
    [row] = ConfigChain(sqlite_url).rows("fear_greed")
    assert row["updated_by"].startswith("unverified claim: root (dagster run ")
