"""Declared providers (`sources/declared_providers.py`) through the engine: `vn_indices` from
VNDIRECT and Vietcap, `coingecko_markets` from CoinGecko and CoinPaprika, each provider's
recording served at its real path by a local server that counts requests per path; the first
provider can be switched to answer 403 (as Vietcap's and VNDIRECT's WAFs do), or an empty day."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from ingestion_pipelines.sources.providers import ProvidersExhausted
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema
from ingestion_pipelines_tests.sources.providers_replay import (
    COINGECKO_PATH,
    COINPAPRIKA_PATH,
    DAYS,
    SERVED,
    VIETCAP_PATH,
    VNDIRECT_PATH,
    Providers,
    run_worker,
    serve,
)


@pytest.fixture
def server():
    with serve() as base:
        yield base
    dispose_all()


def _rows(url: str, table, *columns):
    with ensure_schema(url).connect() as conn:
        chosen = [table.c[c] for c in columns]
        return [tuple(r) for r in conn.execute(select(*chosen).order_by(*chosen[:2]))]


def _health(url: str, worker_id: str) -> dict:
    with ensure_schema(url).connect() as conn:
        details = conn.execute(
            select(tables.worker_state.c.details).where(
                tables.worker_state.c.worker_id == worker_id
            )
        ).scalar_one()
    return details["providers"]


def test_a_blocked_first_provider_costs_at_most_one_extra_request_per_partition(server, sqlite_url):
    """Issue 19's measure: VNDIRECT answers 403; each partition (one run per trading day)
    completes from Vietcap; the 403 costs one request in the first run and none after (its
    health, kept between runs, skips the blocked provider until retry_after)."""
    Providers.blocked = {VNDIRECT_PATH}
    extra_per_partition = []
    for day in DAYS:
        before = dict(Providers.hits)
        result = run_worker("vn_indices", sqlite_url, server, [day])
        sent = {p: n - before.get(p, 0) for p, n in Providers.hits.items()}
        extra_per_partition.append(sum(sent.values()) - 1)  # one request is the partition's own
        assert sent.get(VIETCAP_PATH) == 1
        meta = result.metadata()
        assert meta["partitions_by_provider"] == {"vietcap": 1}
        assert result.written.inserted == 1

    assert extra_per_partition == [1, 0, 0]
    assert Providers.hits == {VNDIRECT_PATH: 1, VIETCAP_PATH: 3}  # a 403 is not retried
    stored = _rows(sqlite_url, tables.index_eod, "index_code", "trade_date", "close", "provider")
    assert stored == [
        ("VN30", DAYS[0], Decimal("1971.99"), "vietcap"),
        ("VN30", DAYS[1], Decimal("1979.53"), "vietcap"),
        ("VN30", DAYS[2], Decimal("1975.5"), "vietcap"),
    ]
    health = _health(sqlite_url, "vn_indices")
    assert health["vndirect"]["blocked_status"] == 403
    assert health["vietcap"]["newest_day"] == "2025-12-05"


def test_the_failover_is_in_the_runs_metadata(server, sqlite_url):
    Providers.blocked = {VNDIRECT_PATH}
    meta = run_worker("vn_indices", sqlite_url, server, DAYS).metadata()
    assert meta["providers_order"] == ["vndirect", "vietcap"]
    assert meta["failovers"] == 1
    (first,) = meta["first_failovers"]
    assert (first["from"], first["to"]) == ("vndirect", "vietcap")
    assert "blocked" in first["reason"] and "403" in first["reason"]
    assert meta["rows_by_provider"] == {"vietcap": 3}
    json.dumps(meta)  # plain JSON, as Dagster's metadata takes it


def test_units_are_the_same_from_either_provider(server, sqlite_url, tmp_path):
    """Index points from VNDIRECT and Vietcap land as the same exact decimals, each row
    naming its provider; the codes are issue 19's whatever the provider calls them."""
    run_worker("vn_indices", sqlite_url, server, DAYS)
    other = f"sqlite:///{tmp_path / 'vietcap.db'}"
    Providers.blocked = {VNDIRECT_PATH}
    run_worker("vn_indices", other, server, DAYS)
    columns = ("index_code", "trade_date", "open", "high", "low", "close")
    vndirect = _rows(sqlite_url, tables.index_eod, *columns, "provider")
    vietcap = _rows(other, tables.index_eod, *columns, "provider")
    assert [r[:-1] for r in vndirect] == [r[:-1] for r in vietcap]
    assert {r[-1] for r in vndirect} == {"vndirect"} and {r[-1] for r in vietcap} == {"vietcap"}


def test_a_provider_stale_for_a_due_day_is_backed_by_the_next(server, sqlite_url):
    """VNDIRECT answers an empty page for a due trading day: Vietcap is asked for the
    partition too (one extra request), and its rows are stored."""
    Providers.empty = {VNDIRECT_PATH}
    meta = run_worker("vn_indices", sqlite_url, server, DAYS).metadata()
    assert Providers.hits == {VNDIRECT_PATH: 1, VIETCAP_PATH: 1}
    assert "stale" in meta["first_failovers"][0]["reason"]
    assert len(_rows(sqlite_url, tables.index_eod, "index_code", "trade_date")) == 3


def test_every_provider_failing_fails_the_run_naming_each_cause(server, sqlite_url):
    Providers.blocked = {VNDIRECT_PATH, VIETCAP_PATH}
    with pytest.raises(ProvidersExhausted, match="vndirect: blocked.*vietcap: blocked"):
        run_worker("vn_indices", sqlite_url, server, DAYS)
    health = _health(sqlite_url, "vn_indices")  # kept although the run failed
    assert health["vietcap"]["blocked_status"] == 403


def test_the_provider_order_is_a_setting(server, sqlite_url):
    # reconcile_days 0: no reconciliation asking VNDIRECT afterwards (test_providers_agree.py)
    run_worker(
        "vn_indices", sqlite_url, server, DAYS, providers=["vietcap", "vndirect"], reconcile_days=0
    )
    assert Providers.hits == {VIETCAP_PATH: 1}


def test_coinpaprika_serves_crypto_market_snapshot_when_coingecko_is_blocked(server, sqlite_url):
    """Issue 21: CoinGecko first, CoinPaprika second, into the one `crypto_market_snapshot`;
    CoinPaprika's rows keep its own coin ids and its USD figures in the same columns."""
    run_worker("coingecko_markets", sqlite_url, server)
    coingecko = _rows(
        sqlite_url, tables.crypto_market_snapshot, "coin_id", "captured_at", "provider"
    )
    assert coingecko and {r[2] for r in coingecko} == {"coingecko"}

    Providers.blocked = {COINGECKO_PATH}
    before = dict(Providers.hits)
    meta = run_worker("coingecko_markets", sqlite_url, server).metadata()
    assert Providers.hits[COINGECKO_PATH] - before[COINGECKO_PATH] == 1
    assert Providers.hits[COINPAPRIKA_PATH] == 1
    assert meta["partitions_by_provider"] == {"coinpaprika": 1}
    columns = ("coin_id", "provider", "symbol", "price_usd", "market_cap_usd", "volume_24h_usd")
    rows = [
        r for r in _rows(sqlite_url, tables.crypto_market_snapshot, *columns) if r[1] != "coingecko"
    ]
    assert [r[:3] for r in rows] == [("btc-bitcoin", "coinpaprika", "BTC")]
    btc = json.loads(SERVED[COINPAPRIKA_PATH], parse_float=Decimal)[0]["quotes"]["USD"]
    assert rows[0][3:] == (btc["price"], btc["market_cap"], btc["volume_24h"])


def test_a_stale_provider_whose_backup_fails_keeps_its_rows(server, sqlite_url):
    """VNDIRECT answers without the due day, Vietcap is blocked: the run completes with
    VNDIRECT's rows (the freshness check judges the day), the failover in its metadata."""
    Providers.blocked = {VIETCAP_PATH}
    days = [*DAYS, DAYS[-1] + timedelta(days=3)]  # to Monday 8 Dec, which VNDIRECT's file lacks
    meta = run_worker("vn_indices", sqlite_url, server, days).metadata()
    assert Providers.hits == {VNDIRECT_PATH: 1, VIETCAP_PATH: 1}
    assert meta["partitions_by_provider"] == {"vndirect": 1}
    assert "stale" in meta["first_failovers"][0]["reason"]
    assert {r[-1] for r in _rows(sqlite_url, tables.index_eod, "index_code", "provider")} == {
        "vndirect"
    }


def test_ingest_status_shows_the_providers_health(server, sqlite_url):
    from ingestion_pipelines.control.commands.common import worker_states
    from ingestion_pipelines.control.commands.status import provider_health

    Providers.blocked = {VNDIRECT_PATH}
    run_worker("vn_indices", sqlite_url, server, DAYS)
    states, error = worker_states(sqlite_url)
    assert error is None
    health = provider_health(states["vn_indices"])
    assert health["vndirect"].startswith("blocked (HTTP 403) since ")
    assert health["vietcap"] == "ok (newest day 2025-12-05)"


def test_ingest_replay_serves_the_second_providers_recording(sqlite_url):
    """`ingest replay` serves Vietcap's and CoinPaprika's recordings at their real paths and
    prints the settings (INGEST_<WORKER>__<PROVIDER>_BASE_URL) that point the workers there."""
    from ingestion_pipelines.replay.http_server import ReplayServer

    with ReplayServer() as replay:
        env = replay.env()
        vietcap = env["INGEST_VN_INDICES__VIETCAP_BASE_URL"]
        assert vietcap == f"{replay.url}/vn_indices/vietcap"
        result = run_worker(
            "vn_indices", sqlite_url, replay.url, DAYS, providers=["vietcap"],
            vietcap_base_url=vietcap,
        )  # fmt: skip
        assert result.metadata()["partitions_by_provider"] == {"vietcap": 1}
        assert len(_rows(sqlite_url, tables.index_eod, "index_code", "trade_date")) == 3
        assert env["INGEST_COINGECKO_MARKETS__COINPAPRIKA_BASE_URL"].endswith(
            "/coingecko_markets/coinpaprika"
        )
    dispose_all()
