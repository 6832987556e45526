"""The demo's settings live in the config chain: written once as signed rows, visible to
`ingest config get` in any shell, and removed again for the live sources."""

from ingestion_pipelines.config.chain import ConfigChain
from ingestion_pipelines.demo.config import (
    DEMO_AUTHOR,
    clear_demo_config,
    demo_settings,
    write_demo_config,
)

REPLAY_ENV = {
    "INGEST_COINGECKO_MARKETS__BASE_URL": "http://127.0.0.1:8700/api/v3",
    "INGEST_BINANCE_TRADES__REST_BASE_URL": "http://127.0.0.1:8701",
    "INGEST_CRON": "*/2 * * * *",
    "INGEST_NOT_A_WORKER__BASE_URL": "http://x",
    "INGEST_DATABASE_URL_UNRELATED": "x",
    "PATH": "/bin",
}


def test_demo_settings_map_variables_to_rows():
    assert sorted(demo_settings(REPLAY_ENV), key=str) == sorted(
        [
            ("coingecko_markets", "base_url", "http://127.0.0.1:8700/api/v3"),
            ("binance_trades", "rest_base_url", "http://127.0.0.1:8701"),
            (None, "cron", "*/2 * * * *"),
        ],
        key=str,
    )


def test_written_once_signed_seen_by_any_shell_and_cleared(sqlite_url):
    changed = write_demo_config(sqlite_url, REPLAY_ENV)
    assert len(changed) == 3
    assert write_demo_config(sqlite_url, REPLAY_ENV) == []  # once: nothing to change
    # Another shell: no replay variables in its environment, the chain still tells the truth.
    shell = ConfigChain(sqlite_url, environ={})
    value = shell.get("coingecko_markets", "base_url")
    assert (value.value, value.layer) == ("http://127.0.0.1:8700/api/v3", "worker_config row")
    assert shell.get("fmarket_nav", "cron").value == "*/2 * * * *"
    assert {r["updated_by"] for r in shell.rows()} == {DEMO_AUTHOR}
    # A row an operator wrote survives the clean-up.
    shell.set("fear_greed", "timeout_s", 12, updated_by="operator")
    assert clear_demo_config(sqlite_url) == 3
    assert [(r["worker_id"], r["key"]) for r in shell.rows()] == [("fear_greed", "timeout_s")]
    assert shell.get("coingecko_markets", "base_url").layer != "worker_config row"
