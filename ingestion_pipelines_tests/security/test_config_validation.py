"""Item 6: config validated completely (finite bounded numbers, curl_cffi's own browser
profiles, symbols per feed pattern, bounded lists); a corrupt `worker_config` row is reported
with its worker, key and layer, skipped (its layer falls through), and `config unset` removes it."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest
from sqlalchemy import insert, literal

from ingestion_pipelines.config.chain import ConfigChain, ConfigError
from ingestion_pipelines.control.defs import config_change_job
from ingestion_pipelines.resources.worker_config import WorkerConfigResource
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema
from ingestion_pipelines.storage.tables import worker_config
from ingestion_pipelines_tests.control.helpers import ingest

BAD = [
    ("fear_greed", "timeout_s", "Infinity", "finite"),
    ("fear_greed", "timeout_s", "NaN", "finite"),
    ("fear_greed", "timeout_s", "1e9", "less than or equal"),
    ("fear_greed", "rate_limit_per_s", "inf", "finite"),
    ("binance_trades", "silence_limit_s", "Infinity", "finite"),
    ("fmarket_funds", "impersonate", "netscape4", "curl_cffi"),
    ("binance_trades", "symbols", '[""]', "non-empty"),
    ("binance_trades", "symbols", '["\\"btcusdt\\""]', "do not match"),
    ("binance_trades", "symbols", '["btc usdt"]', "do not match"),
    ("ssi_iboard", "symbols", '["VCB", "vcb"]', "twice"),
    ("ssi_iboard", "symbols", '["VC"]', "do not match"),  # each feed has its own pattern
    ("binance_trades", "symbols", '["btc"]', "do not match"),
]


@pytest.mark.parametrize(("worker", "key", "raw", "reason"), BAD)
def test_bad_values_are_refused_naming_worker_key_and_layer(sqlite_url, worker, key, raw, reason):
    env = {f"INGEST_{worker.upper()}__{key.upper()}": raw}
    with pytest.raises(ConfigError, match=reason) as caught:
        ConfigChain(sqlite_url, environ=env).resolve(worker)
    message = str(caught.value)
    assert worker in message and repr(key) in message and f"INGEST_{worker.upper()}" in message


def test_good_values_pass_and_ten_thousand_symbols_do_not(sqlite_url):
    env = {
        "INGEST_FEAR_GREED__TIMEOUT_S": "12.5",
        "INGEST_FEAR_GREED__IMPERSONATE": "chrome124",
        "INGEST_BINANCE_TRADES__SYMBOLS": "btcusdt,ETHUSDT",
    }
    chain = ConfigChain(sqlite_url, environ=env)
    assert chain.resolve("fear_greed").settings.timeout_s == 12.5
    assert chain.resolve("fear_greed").settings.impersonate == "chrome124"
    assert chain.resolve("binance_trades").settings.symbols == ["btcusdt", "ETHUSDT"]
    symbols = [f"sym{i}usdt" for i in range(10_000)]
    with pytest.raises(ConfigError, match="at most") as caught:
        chain.validate("binance_trades", "symbols", symbols)
    assert len(str(caught.value)) < 1000  # the error names the problem, not 10,000 symbols


def _corrupt_row(url: str, worker_id: str | None, key: str, raw: str) -> None:
    # written below the JSON type, as a hand edit or another tool would
    with ensure_schema(url).begin() as conn:
        conn.execute(
            insert(worker_config).values(
                worker_id=worker_id,
                key=key,
                value=literal(raw),
                updated_at=datetime.now(UTC),
                updated_by="hand edit",
            )
        )


def test_a_corrupt_row_is_reported_skipped_and_removable(database_url, monkeypatch):
    monkeypatch.setenv("INGEST_DATABASE_URL", database_url)
    try:
        chain = ConfigChain(database_url, environ={"INGEST_TIMEOUT_S": "17"})
        chain.set(None, "timeout_s", 9)
        _corrupt_row(database_url, "fear_greed", "timeout_s", "{not json")
        resolved = chain.resolve("fear_greed")
        # its layer falls through to the global row; other workers are untouched
        assert resolved.settings.timeout_s == 9
        assert resolved.values["timeout_s"].layer == "global worker_config row"
        [corrupt] = resolved.corrupt
        assert (corrupt.worker_id, corrupt.key, corrupt.layer) == (
            "fear_greed",
            "timeout_s",
            "worker_config row",
        )
        assert "ingest config unset fear_greed timeout_s" in corrupt.describe()
        assert chain.resolve("fmarket_nav").settings.timeout_s == 9
        [row] = chain.rows("fear_greed")
        assert row["value"] == "{not json"

        listed = ingest("config", "list", "fear_greed")
        assert listed.code == 0, listed.err
        assert "fear_greed.timeout_s" in listed.err and "worker_config row" in listed.err
        got = ingest("config", "get", "fear_greed", "timeout_s")
        assert got.code == 0 and "9" in got.out

        # what `ingest config unset fear_greed timeout_s` launches
        result = config_change_job.execute_in_process(
            run_config={
                "ops": {
                    "apply_config_change": {
                        "config": {"worker_id": "fear_greed", "key": "timeout_s", "unset": True}
                    }
                }
            },
            resources={"worker_config": WorkerConfigResource(database_url=database_url)},
            instance=dg.DagsterInstance.ephemeral(),
        )
        assert result.success
        assert chain.rows("fear_greed") == []
        assert chain.resolve("fear_greed").corrupt == []
    finally:
        dispose_all()
