import json

import dagster as dg
import pytest

from ingestion_pipelines.cli import main as ingest
from ingestion_pipelines.config.chain import ConfigChain, ConfigError
from ingestion_pipelines.config.workers import FeedSettings, ScheduledSettings, WorkerSpec, register
from ingestion_pipelines.resources.worker_config import WorkerConfigResource
from ingestion_pipelines.storage.engines import dispose_all


class ChainTestSettings(ScheduledSettings):
    base_url: str = "https://example.invalid/api"
    cron: str = "45 18 * * *"
    page_size: int = 100


class ChainFeedSettings(FeedSettings):
    symbols: list[str] = ["btcusdt"]


register(WorkerSpec("chain_test", "scheduled", ChainTestSettings))
register(WorkerSpec("chain_feed", "feed", ChainFeedSettings))


@pytest.fixture(params=["sqlite", "mariadb"])
def chain(request, monkeypatch):
    url = request.getfixturevalue(f"{request.param}_url")
    monkeypatch.setenv("INGEST_DATABASE_URL", url)
    yield ConfigChain(url)
    dispose_all()


def test_each_layer_overrides_the_ones_below(chain, monkeypatch):
    def timeout(run_config=None):
        value = chain.get("chain_test", "timeout_s", run_config)
        return value.value, value.layer

    assert timeout() == (30.0, "default")
    monkeypatch.setenv("INGEST_TIMEOUT_S", "5")
    assert timeout() == (5.0, "env INGEST_TIMEOUT_S")
    monkeypatch.setenv("INGEST_CHAIN_TEST__TIMEOUT_S", "6")
    assert timeout() == (6.0, "env INGEST_CHAIN_TEST__TIMEOUT_S")
    chain.set(None, "timeout_s", 7, updated_by="test")
    assert timeout() == (7.0, "global worker_config row")
    chain.set("chain_test", "timeout_s", 8, updated_by="test")
    assert timeout() == (8.0, "worker_config row")
    assert timeout({"timeout_s": 9}) == (9.0, "run config")
    # Other workers see the global row but not chain_test's own row.
    assert chain.get("chain_feed", "timeout_s").value == 7.0
    assert chain.unset("chain_test", "timeout_s") == 8
    assert timeout() == (7.0, "global worker_config row")


def test_environment_lists_and_booleans(chain, monkeypatch):
    monkeypatch.setenv("INGEST_CHAIN_FEED__SYMBOLS", "btcusdt, ethusdt")
    assert chain.get("chain_feed", "symbols").value == ["btcusdt", "ethusdt"]
    monkeypatch.setenv("INGEST_CHAIN_FEED__SYMBOLS", '["solusdt"]')
    assert chain.get("chain_feed", "symbols").value == ["solusdt"]
    monkeypatch.setenv("INGEST_CHAIN_FEED__ENABLED", "0")
    assert chain.get("chain_feed", "enabled").value is False
    monkeypatch.setenv("INGEST_CHAIN_TEST__BASE_URL", "http://127.0.0.1:8700/")
    assert chain.get("chain_test", "base_url").value == "http://127.0.0.1:8700"


def test_a_bad_value_names_worker_key_layer_and_expectation(chain, monkeypatch):
    monkeypatch.setenv("INGEST_CHAIN_TEST__PAGE_SIZE", "lots")
    with pytest.raises(ConfigError) as error:
        chain.resolve("chain_test")
    message = str(error.value)
    assert "chain_test" in message and "'page_size'" in message
    assert "env INGEST_CHAIN_TEST__PAGE_SIZE" in message and "int" in message
    monkeypatch.delenv("INGEST_CHAIN_TEST__PAGE_SIZE")
    with pytest.raises(ConfigError, match="run config.*valid integer"):
        chain.resolve("chain_test", {"page_size": "x"})
    with pytest.raises(ConfigError, match="unknown key"):
        chain.resolve("chain_test", {"colour": "red"})


def test_writes_are_validated_first_and_record_who_and_when(chain):
    with pytest.raises(ConfigError, match="not a valid cron"):
        chain.set("chain_test", "cron", "every evening", updated_by="ops")
    with pytest.raises(ConfigError, match="unknown key"):
        chain.set("chain_test", "colour", "red")
    assert chain.rows() == []
    assert chain.set("chain_test", "cron", "0 19 * * *", updated_by="ops@host") == (
        None,
        "0 19 * * *",
    )
    assert chain.set("chain_test", "cron", "5 19 * * *", updated_by="ops@host") == (
        "0 19 * * *",
        "5 19 * * *",
    )
    (row,) = chain.rows("chain_test")
    assert row["updated_by"] == "ops@host" and row["updated_at"].tzinfo is not None
    chain.set(None, "rate_limit_per_s", 2, updated_by="ops")
    chain.set(None, "rate_limit_per_s", 3, updated_by="ops")
    assert [r["value"] for r in chain.rows() if r["worker_id"] is None] == [3]


def test_secrets_are_masked_when_shown(chain, monkeypatch, capsys):
    monkeypatch.setenv("INGEST_CHAIN_TEST__PROXY", "http://crawler:hunter22@proxy.local:3128")
    value = chain.get("chain_test", "proxy")
    assert value.value == "http://crawler:hunter22@proxy.local:3128"
    assert "hunter22" not in value.display() and "proxy.local" in value.display()
    assert ingest(["config", "list", "chain_test"]) == 0
    assert "hunter22" not in capsys.readouterr().out


def test_cli_get_and_list_print_value_and_layer(chain, monkeypatch, capsys):
    chain.set("chain_test", "page_size", 250, updated_by="test")
    assert ingest(["config", "get", "chain_test", "page_size"]) == 0
    assert capsys.readouterr().out.strip() == "250\t(worker_config row)"
    assert (
        ingest(
            ["config", "get", "chain_test", "page_size", "--run-config", "page_size=10", "--json"]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == {
        "worker_id": "chain_test",
        "key": "page_size",
        "value": "10",
        "layer": "run config",
    }
    assert ingest(["config", "list", "chain_test", "--json"]) == 0
    listed = {item["key"]: item for item in json.loads(capsys.readouterr().out)}
    assert listed["cron"]["layer"] == "default" and listed["page_size"]["value"] == "250"
    monkeypatch.setenv("INGEST_CHAIN_TEST__TIMEOUT_S", "-1")
    assert ingest(["config", "get", "chain_test", "timeout_s"]) == 2
    assert "greater than 0" in capsys.readouterr().err


def test_resource_resolves_inside_an_asset(chain):
    chain.set("chain_test", "page_size", 77, updated_by="test")
    seen = {}

    @dg.asset
    def reads_config(worker_config: WorkerConfigResource):
        resolved = worker_config.resolve("chain_test", {"timeout_s": 3})
        seen.update(page=resolved.settings.page_size, timeout=resolved.settings.timeout_s)

    result = dg.materialize(
        [reads_config],
        resources={"worker_config": WorkerConfigResource(database_url=chain.database_url)},
    )
    assert result.success
    assert seen == {"page": 77, "timeout": 3.0}
