"""The providers' reconciliation (issue 19 §11): after a run stored its window from one provider,
the other is asked for the window's last days (sources/declared_reconcile.py), its values kept in
`provider_observation` (never in the table), and `providers_agree` (sources/providers_agree.py)
names every difference. Each provider's recording is served at its real path by the failover
tests' local server (providers_replay.py): VNDIRECT's and Vietcap's VN30 of the same three days."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from ingestion_pipelines.sources import providers_agree
from ingestion_pipelines.sources.declared import declared_sources
from ingestion_pipelines.sources.declared_reconcile import reconcile_spec, row_key
from ingestion_pipelines.sources.factory import build_source_defs
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema
from ingestion_pipelines.storage.upsert import upsert
from ingestion_pipelines_tests.sources.providers_replay import (
    DAYS,
    SERVED,
    STOCK_DAYS,
    STOCK_PRICES_PATH,
    VIETCAP_PATH,
    VNDIRECT_PATH,
    Providers,
    make_source,
    run_source,
    serve,
)

# VNDIRECT's captured FPT days (adOpen/adClose, thousands of VND), as in test_vn_stock_eod_providers
VNDIRECT_FPT = (
    Path(__file__).parents[1]
    / "derived/data/vn_stock_eod_adjusted/data/vndirect_stock_prices_FPT_2026-09-15_23.json"
)
FPT = {"symbol": "FPT", "exchange": "HOSE", "name": "FPT", "type": "STOCK", "status": "listed"}


@pytest.fixture
def server():
    with serve() as base:
        yield base
    dispose_all()


def _run(worker_id: str, url: str, base: str, days: list[date], **settings):
    source = make_source(worker_id, url, base, days, **settings)
    result = run_source(source, url)
    check = providers_agree.check_result(type(source), source, ensure_schema(url), source.window)
    return result, check


def _observations(url: str) -> list[tuple]:
    t = tables.provider_observation.c
    query = select(t.provider, t.column_name, t.day, t.value).order_by(t.day, t.column_name)
    with ensure_schema(url).connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def test_two_providers_agreeing_pass_with_the_days_compared(server, sqlite_url):
    """VNDIRECT answers the run; Vietcap is asked once for the same days; their VN30 points are
    the same exact decimals: the check passes, 3 days compared, Vietcap's values kept beside the
    table (which holds VNDIRECT's rows only)."""
    result, check = _run("vn_indices", sqlite_url, server, DAYS)

    assert result.written.inserted == 3
    assert Providers.hits == {VNDIRECT_PATH: 1, VIETCAP_PATH: 1}  # one extra request, bounded
    assert check.passed and check.severity == dg.AssetCheckSeverity.WARN
    meta = check.metadata
    assert meta["days_compared"].value == 3
    assert meta["values_compared"].value == 12  # open/high/low/close; VNDIRECT's file has no volume
    assert meta["differences"].value == 0
    assert meta["providers"].value == ["vietcap", "vndirect"]
    kept = _observations(sqlite_url)
    assert ("vietcap", "close", DAYS[0], "1971.99") in kept
    assert ("vietcap", "volume", DAYS[0], "397133423") in kept
    with ensure_schema(sqlite_url).connect() as conn:
        providers = set(conn.execute(select(tables.index_eod.c.provider)).scalars())
    assert providers == {"vndirect"}


def test_a_value_beyond_the_tolerance_is_named_with_both_values(server, sqlite_url, monkeypatch):
    """Vietcap's recording with VN30's close of 4 Dec moved by 0.07 point (the tolerance is one
    hundredth): the check fails as a warning naming the key, the column and both values."""
    recorded = json.loads(SERVED[VIETCAP_PATH])
    recorded[0]["c"][1] = 1979.6  # VNDIRECT: 1979.53
    monkeypatch.setitem(SERVED, VIETCAP_PATH, json.dumps(recorded).encode())

    result, check = _run("vn_indices", sqlite_url, server, DAYS)

    assert result.written.inserted == 3  # the run stands
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["differences"].value == 1
    named = "index_code=VN30, trade_date=2025-12-04 close: vndirect 1979.53 vs vietcap 1979.6"
    assert check.metadata["named_differences"].value == [f"{named} (tolerance 0.01)"]
    assert named in check.description


def test_a_failing_second_provider_leaves_the_run_whole_and_says_what_was_not_compared(
    server, sqlite_url
):
    """Vietcap answers 403 to the reconciliation: the run's rows are stored from VNDIRECT, the
    check says Vietcap could not be asked and why, and Vietcap's health records the block."""
    Providers.blocked = {VIETCAP_PATH}
    result, check = _run("vn_indices", sqlite_url, server, DAYS)

    assert result.written.inserted == 3
    assert not check.passed
    assert check.metadata["days_compared"].value == 0
    why = check.metadata["not_compared"].value["vietcap"]
    assert why.startswith("failed:") and "403" in why
    assert "not compared: vietcap: failed" in check.description
    assert result.providers["provider_health"]["vietcap"]["blocked_status"] == 403


def test_reconciliation_is_off_by_setting(server, sqlite_url):
    result, check = _run("vn_indices", sqlite_url, server, DAYS, reconcile_days=0)

    assert Providers.hits == {VNDIRECT_PATH: 1}  # no extra request
    assert check.passed
    assert check.metadata["not_compared"].value == {"off": "reconcile_days is 0"}
    assert _observations(sqlite_url) == []


def _seed_fpt(url: str) -> None:
    with ensure_schema(url).begin() as conn:
        conn.execute(tables.stock.insert(), [FPT])


def _observe_vndirect_fpt(url: str, moved: dict[date, str]) -> None:
    """VNDIRECT's captured adjusted closes of FPT as its observations (`moved`: days changed)."""
    rows = json.loads(VNDIRECT_FPT.read_text())["data"]
    values = []
    for row in rows:
        day = date.fromisoformat(row["date"])
        key = row_key({"symbol": "FPT", "trade_date": day}, ["symbol", "trade_date"])
        value = moved.get(day, str(row["adClose"]))
        values.append({"worker_id": "vn_stock_eod", "row_key": key, "provider": "vndirect",
                       "column_name": "adjusted_close", "day": day, "value": value,
                       "fetched_at": datetime.now(UTC)})  # fmt: skip
    upsert(ensure_schema(url), tables.provider_observation, values)


def test_stock_prices_are_judged_by_one_price_step_of_the_board(server, sqlite_url):
    """vn_stock_eod answered by Vietcap (VNDIRECT blocked): its adjusted closes against
    VNDIRECT's captured adClose of the same days. FPT (HOSE) at 66,200 VND steps by 100 VND
    (0.1 in the table's thousands): one step apart agrees, two steps is named."""
    _seed_fpt(sqlite_url)
    Providers.blocked = {STOCK_PRICES_PATH}
    source = make_source("vn_stock_eod", sqlite_url, server, STOCK_DAYS)
    run_source(source, sqlite_url)
    engine = ensure_schema(sqlite_url)
    assert source.observed.not_compared["vndirect"].startswith("failed in the run: blocked")

    _observe_vndirect_fpt(sqlite_url, {date(2026, 9, 22): "66.7"})  # Vietcap: 66.6: one step
    agreeing = providers_agree.check_result(type(source), source, engine, source.window)
    assert agreeing.metadata["days_compared"].value == 7
    assert agreeing.metadata["differences"].value == 0

    _observe_vndirect_fpt(sqlite_url, {date(2026, 9, 23): "66.4"})  # Vietcap: 66.2: two steps
    found = providers_agree.compare(type(source), engine, source.window)
    assert [d.describe() for d in found.differences] == [
        "symbol=FPT, trade_date=2026-09-23 adjusted_close: vietcap 66.2 vs vndirect 66.4 "
        "(tolerance one price step, 0.1)"
    ]


def test_a_secondary_failing_for_a_stock_fails_nothing_but_the_comparison(server, sqlite_url):
    """Vietcap first, VNDIRECT second and answering 404 for the reconciliation: Vietcap's rows
    are stored, the check names VNDIRECT's failure."""
    _seed_fpt(sqlite_url)
    result, check = _run(
        "vn_stock_eod", sqlite_url, server, STOCK_DAYS, providers=["vietcap", "vndirect"]
    )
    assert result.written.inserted == 7
    assert Providers.hits == {VIETCAP_PATH: 1, STOCK_PRICES_PATH: 1}
    assert check.metadata["not_compared"].value["vndirect"].startswith("failed:")
    assert "404" in check.metadata["not_compared"].value["vndirect"]


def test_every_multi_provider_declaration_gets_the_check_and_names_table_columns():
    """`providers_agree` is generated for each declaration with more than one provider; every
    column its `reconcile:` compares is a column of its table."""
    multi = {w: c for w, c in declared_sources().items() if c.spec.providers}
    assert {"vn_indices", "vn_stock_eod", "coingecko_markets"} <= set(multi)
    for worker_id, cls in multi.items():
        names = {spec.name for spec in build_source_defs(cls).asset.check_specs}
        assert providers_agree.CHECK_NAME in names, worker_id
        spec = reconcile_spec(cls)
        if spec is not None:
            assert set(spec.columns) <= set(cls.table.c.keys()), worker_id
    single = declared_sources()["vn_stocks"]
    assert providers_agree.check_specs(single) == []


def test_a_stored_null_provider_is_the_declarations_own(sqlite_url):
    """A row stored before providers were recorded (provider NULL) is the declaration's own
    provider's: its observation from that same provider is not compared with itself."""
    cls = declared_sources()["vn_indices"]
    engine = ensure_schema(sqlite_url)
    day = DAYS[0]
    with engine.begin() as conn:
        conn.execute(tables.index_eod.insert(), [{"index_code": "VN30", "trade_date": day,
            "open": Decimal(1), "high": Decimal(2), "low": Decimal(1), "close": Decimal(2)}])  # fmt: skip
    key = row_key({"index_code": "VN30", "trade_date": day}, ["index_code", "trade_date"])
    upsert(engine, tables.provider_observation, [
        {"worker_id": "vn_indices", "row_key": key, "provider": p, "column_name": "close",
         "day": day, "value": "3", "fetched_at": datetime.now(UTC)} for p in ("vndirect", "vietcap")
    ])  # fmt: skip
    found = providers_agree.compare(cls, engine, None)
    assert found.values == 1
    assert [d.ours for d in found.differences] == [("vndirect", "2")]
    dispose_all()


def test_ingest_replay_serves_both_providers_for_the_same_days(sqlite_url):
    """`ingest replay` serves VNDIRECT's VN30 recording of 3-5 Dec 2025 (replay.also) beside
    Vietcap's of the same days: a run there compares the two, and they agree."""
    from ingestion_pipelines.replay.http_server import ReplayServer

    with ReplayServer() as replay:
        vietcap = replay.env()["INGEST_VN_INDICES__VIETCAP_BASE_URL"]
        result, check = _run(
            "vn_indices", sqlite_url, replay.url, DAYS, vietcap_base_url=vietcap, codes="VN30"
        )
    assert result.written.inserted == 3
    assert check.passed, check.description
    assert check.metadata["days_compared"].value == 3
    assert check.metadata["values_compared"].value == 12
    dispose_all()
