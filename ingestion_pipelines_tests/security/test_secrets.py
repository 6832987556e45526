"""Item 2: no secret in run config, the instance database or any GraphQL answer. A secret key
travels only as a reference to an environment variable of the workers (`{"env": "NAME"}`,
`env:NAME` on the command line); a literal is refused before any run exists."""

from __future__ import annotations

import json

import pytest

from ingestion_pipelines.config.chain import ConfigChain, ConfigError
from ingestion_pipelines_tests.control.helpers import ingest

SECRET = "Pr0xyPa55-zz91"
PROXY = f"http://crawler:{SECRET}@127.0.0.1:3128"


def _no_secret_anywhere(operator) -> None:
    assert SECRET.encode() not in operator.instance_bytes()


def test_config_set_refuses_a_literal_secret_before_launching(operator, monkeypatch):
    monkeypatch.setenv("INGEST_DAGSTER_URL", operator.stack.url)
    monkeypatch.setenv("INGEST_DATABASE_URL", operator.database_url)
    before = operator.run_ids()
    for key, value in [("proxy", PROXY), ("alert_webhook", f"https://h.example/{SECRET}")]:
        out = ingest("config", "set", "fear_greed", key, value)
        assert out.code != 0 and "env:NAME" in out.out + out.err
        assert SECRET not in out.out + out.err
    # a URL password in any key is a secret too
    out = ingest("config", "set", "fear_greed", "base_url", f"https://u:{SECRET}@h.example")
    assert out.code != 0 and SECRET not in out.out + out.err
    assert operator.run_ids() == before
    _no_secret_anywhere(operator)


def _refused(status, answer, why: str) -> None:
    """The instance refused to store the run: an error naming why, never the secret."""
    assert status in (200, 500), answer  # Dagster answers a PythonError with 500
    launched = answer["data"]["launchRun"]
    assert launched["__typename"] == "PythonError" and why in launched["message"], launched
    assert SECRET not in str(answer)


def test_the_launchpad_cannot_store_a_literal_secret(operator):
    before = operator.run_ids()
    # a crawl's run config: refused where the run would be stored
    for proxy in (PROXY, f"socks5h://{SECRET}.example:1080"):
        config = {"ops": {"fear_greed": {"config": {"proxy": proxy}}}}
        status, answer = operator.launch("fear_greed_job", config, user="alice")
        assert SECRET not in str(answer)
        if answer["data"]["launchRun"]["__typename"] == "PythonError":
            _refused(status, answer, "secret")
        else:  # Dagster's own config check ({env: NAME} typed) answers first
            assert answer["data"]["launchRun"]["__typename"] == "RunConfigValidationInvalid"
    # the config job
    change = {"worker_id": "fear_greed", "key": "proxy", "value": f'"{PROXY}"'}
    status, answer = operator.launch(
        "config_change", {"ops": {"apply_config_change": {"config": change}}}, user="alice"
    )
    _refused(status, answer, "secret")
    # a URL password given under a key that is not a secret key
    config = {"ops": {"fear_greed": {"config": {"base_url": f"https://u:{SECRET}@h.example"}}}}
    status, answer = operator.launch("fear_greed_job", config, user="alice")
    _refused(status, answer, "password")
    assert operator.run_ids() == before
    _no_secret_anywhere(operator)


def test_a_secret_written_inline_in_the_query_is_refused_too(operator):
    """Issue 22 §1 (low): the literal sat in the query text, not in the variables."""
    before = operator.run_ids()
    for key, value in (("proxy", PROXY), ("timeout_s", f"https://u:{SECRET}@h.example")):
        query = (
            "mutation { launchRun(executionParams: {selector: {repositoryLocationName: "
            '"ingestion_pipelines", repositoryName: "__repository__", jobName: "config_change"}, '
            'runConfigData: {ops: {apply_config_change: {config: {worker_id: "fear_greed", '
            f'key: "{key}", value: {json.dumps(json.dumps(value))}' + "}}}}}) "
            "{ __typename ... on PythonError { message } } }"
        )
        status, answer = operator.post(query, user="alice")
        _refused(status, answer, "secret" if key == "proxy" else "password")
    assert operator.run_ids() == before
    _no_secret_anywhere(operator)


def test_dagster_itself_refuses_a_literal_secret_in_a_crawls_run_config():
    """What a plain `dagster-webserver` (or `dagster job launch`) checks before creating a run:
    the crawl's secret keys are typed `{env: NAME}`."""
    import dagster as dg

    from ingestion_pipelines.definitions import build_definitions

    job = build_definitions().get_job_def("fear_greed_job")
    literal = {"ops": {"fear_greed": {"config": {"proxy": f"socks5h://{SECRET}.example:1080"}}}}
    with pytest.raises(dg.DagsterInvalidConfigError, match="proxy"):
        dg.validate_run_config(job, literal)
    reference = {"ops": {"fear_greed": {"config": {"proxy": {"env": "FG_PROXY"}}}}}
    assert dg.validate_run_config(job, reference)


def test_a_reference_travels_and_the_secret_stays_in_the_environment(operator):
    config = {"ops": {"fear_greed": {"config": {"proxy": {"env": "FG_PROXY"}}}}}
    status, answer = operator.launch("fear_greed_job", config, user="alice")
    assert status == 200 and answer["data"]["launchRun"]["__typename"] == "LaunchRunSuccess"
    run = operator.run(answer["data"]["launchRun"]["run"]["runId"])
    assert "FG_PROXY" in run["runConfigYaml"]
    change = {"worker_id": "fear_greed", "key": "proxy", "value": '{"env": "FG_PROXY"}'}
    status, answer = operator.launch(
        "config_change", {"ops": {"apply_config_change": {"config": change}}}, user="alice"
    )
    assert status == 200 and answer["data"]["launchRun"]["__typename"] == "LaunchRunSuccess"
    _no_secret_anywhere(operator)


def test_the_chain_resolves_references_where_used_and_refuses_literals_in_run_config(sqlite_url):
    chain = ConfigChain(sqlite_url, environ={"FG_PROXY": PROXY})
    chain.set("fear_greed", "proxy", {"env": "FG_PROXY"})
    resolved = chain.resolve("fear_greed")
    assert resolved.settings.proxy == PROXY
    assert resolved.values["proxy"].layer == "worker_config row (env FG_PROXY)"
    assert SECRET not in resolved.values["proxy"].display()
    # shown, not read, where the variable is not (the CLI's `config get|list`)
    shown = ConfigChain(sqlite_url, environ={}, dereference=False).get("fear_greed", "proxy")
    assert shown.display() == "env:FG_PROXY"
    with pytest.raises(ConfigError, match="FG_PROXY, which is not set"):
        ConfigChain(sqlite_url, environ={}).resolve("fear_greed")
    with pytest.raises(ConfigError, match="is a secret") as caught:
        chain.resolve("fear_greed", {"proxy": PROXY})
    assert SECRET not in str(caught.value)


def test_every_secret_key_of_every_worker_is_a_reference_in_run_config():
    from ingestion_pipelines.config.workers import catalogue
    from ingestion_pipelines.sources.launch import RunOverrides

    secret_keys = {k for spec in catalogue().values() for k in spec.settings.secret_keys()}
    assert secret_keys and secret_keys <= set(RunOverrides.model_fields)
