"""`vn_stock_eod`'s second provider through the engine (issue 19 §11, "How it will be checked"):
with VNDIRECT answering 403, a run completes from Vietcap's chart API with `provider` = vietcap
on every row, prices in the table's unit (thousands of VND, Vietcap's full VND scaled by 0.001)
and flagged `prices_adjusted` (Vietcap's bars are adjusted); VNDIRECT's recorded adjusted closes
of FPT are the same stored values. Recordings: defs/vn_stock_eod/data (PROVENANCE.md)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from ingestion_pipelines.derived.stock_eod_adjusted import raw_histories
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema
from ingestion_pipelines_tests.sources.providers_replay import (
    STOCK_DAYS,
    STOCK_PRICES_PATH,
    VIETCAP_PATH,
    Providers,
    run_worker,
    serve,
)

FPT = {"symbol": "FPT", "exchange": "HOSE", "name": "FPT", "type": "STOCK", "status": "listed"}
DERIVED = Path(__file__).parents[1] / "derived/data/vn_stock_eod_adjusted/data"  # captured
EX_DATE = date(2026, 9, 21)  # FPT's ex-date inside the recording (PROVENANCE.md)


@pytest.fixture
def server():
    with serve() as base:
        yield base
    dispose_all()


def _seed_listing(url: str) -> None:
    with ensure_schema(url).begin() as conn:
        conn.execute(tables.stock.insert(), [FPT])


def _stored(url: str) -> list[dict]:
    c = tables.stock_eod.c
    query = select(
        c.symbol, c.trade_date, c.open, c.high, c.low, c.close, c.adjusted_close, c.volume,
        c.provider, c.prices_adjusted,
    ).order_by(c.trade_date)  # fmt: skip
    with ensure_schema(url).connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def _vndirect_fpt() -> dict[date, dict]:
    path = DERIVED / "vndirect_stock_prices_FPT_2026-09-15_23.json"
    rows = json.loads(path.read_text(), parse_float=Decimal)["data"]
    return {date.fromisoformat(r["date"]): r for r in rows}


def test_a_blocked_vndirect_run_completes_from_vietcap_in_the_same_units(server, sqlite_url):
    """VNDIRECT answers 403: the partition (FPT over the window) is read from Vietcap, one extra
    request; every row says vietcap and adjusted; its prices equal VNDIRECT's adjusted prices of
    the same days in thousands of VND, and its raw ones after the last ex-date."""
    _seed_listing(sqlite_url)
    Providers.blocked = {STOCK_PRICES_PATH}
    result = run_worker("vn_stock_eod", sqlite_url, server, STOCK_DAYS)

    assert Providers.hits == {STOCK_PRICES_PATH: 1, VIETCAP_PATH: 1}  # a 403 is not retried
    assert result.metadata()["partitions_by_provider"] == {"vietcap": 1}
    assert result.written.inserted == 7
    stored = _stored(sqlite_url)
    assert {(r["provider"], r["prices_adjusted"]) for r in stored} == {("vietcap", True)}
    vndirect = _vndirect_fpt()
    assert [r["trade_date"] for r in stored] == sorted(vndirect)
    for row in stored:
        theirs = vndirect[row["trade_date"]]
        assert (row["open"], row["close"]) == (theirs["adOpen"], theirs["adClose"])
        assert row["adjusted_close"] == theirs["adClose"]
        if row["trade_date"] >= EX_DATE:  # no event after: adjusted = raw, the same stored values
            assert (row["open"], row["close"]) == (theirs["open"], theirs["close"])
        assert row["low"] <= min(row["open"], row["close"]) <= row["high"]
        assert row["volume"] is None  # the recording's `v` is null (built from client code)
    assert stored[-1]["close"] == Decimal("66.2")  # 66,200 VND in thousands, as VNDIRECT says


def test_vietcaps_adjusted_bars_are_not_adjusted_again(server, sqlite_url):
    """`vn_stock_eod_adjusted` reads raw prices only: Vietcap's rows are left out."""
    _seed_listing(sqlite_url)
    Providers.blocked = {STOCK_PRICES_PATH}
    run_worker("vn_stock_eod", sqlite_url, server, STOCK_DAYS)
    assert len(_stored(sqlite_url)) == 7
    assert list(raw_histories(ensure_schema(sqlite_url))) == []


def test_the_provider_order_is_a_setting(server, sqlite_url):
    """`providers: [vietcap]`: VNDIRECT is never asked."""
    _seed_listing(sqlite_url)
    run_worker("vn_stock_eod", sqlite_url, server, STOCK_DAYS, providers=["vietcap"])
    assert Providers.hits == {VIETCAP_PATH: 1}
    assert len(_stored(sqlite_url)) == 7


def test_ingest_replay_serves_vietcaps_recording(sqlite_url):
    """`ingest replay` serves Vietcap's FPT recording at its real path under
    INGEST_VN_STOCK_EOD__VIETCAP_BASE_URL."""
    from ingestion_pipelines.replay.http_server import ReplayServer

    _seed_listing(sqlite_url)
    with ReplayServer() as replay:
        vietcap = replay.env()["INGEST_VN_STOCK_EOD__VIETCAP_BASE_URL"]
        assert vietcap == f"{replay.url}/vn_stock_eod/vietcap"
        result = run_worker(
            "vn_stock_eod", sqlite_url, replay.url, STOCK_DAYS, providers=["vietcap"],
            vietcap_base_url=vietcap,
        )  # fmt: skip
        assert result.metadata()["partitions_by_provider"] == {"vietcap": 1}
    assert {r["provider"] for r in _stored(sqlite_url)} == {"vietcap"}
    dispose_all()


def test_vndirect_must_still_send_volume_though_vietcap_rows_may_lack_it():
    # the column is nullable for Vietcap's rows; a VNDIRECT record without nmVolume is still bad
    from pydantic import ValidationError

    from ingestion_pipelines.sources.declared import declared_sources

    record = declared_sources()["vn_stock_eod"].record
    path = DERIVED / "vndirect_stock_prices_ABB_2021-12-03.json"
    captured = json.loads(path.read_text(), parse_float=Decimal)  # as the engine reads JSON
    row = captured["data"][0]
    assert record.model_validate(row).volume == Decimal(str(row["nmVolume"]))
    with pytest.raises(ValidationError, match="nmVolume|volume"):
        record.model_validate({k: v for k, v in row.items() if k != "nmVolume"})
