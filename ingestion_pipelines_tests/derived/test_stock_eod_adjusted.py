"""`vn_stock_eod_adjusted` (issue 19 item 7): `stock_eod` adjusted backward for
`corporate_event`, materialised through Dagster, and reconciled with VNDIRECT's own adjusted
close (`stock_eod.adjusted_close`) by one price step.

Raw prices are real VNDIRECT captures (data/vn_stock_eod_adjusted/PROVENANCE.md): FPT across
its 2026-09-21 ex-date, whose `adClose/close` is 0.9091 before it (a 10% stock dividend, 1/1.1),
and ABB on 2021-12-03 (no event).
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal, localcontext
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select, update

from ingestion_pipelines.config.workers import catalogue
from ingestion_pipelines.derived import defs as derived_defs
from ingestion_pipelines.derived.stock_eod_adjusted import (
    CHECK_NAME,
    WORKER_ID,
    adjusted_eod_asset,
)
from ingestion_pipelines.resources.database import DatabaseResource
from ingestion_pipelines.resources.worker_config import WorkerConfigResource
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import stock_eod, stock_eod_adjusted
from ingestion_pipelines.storage.upsert import upsert

DATA = Path(__file__).parent / "data" / "vn_stock_eod_adjusted" / "data"
EX_DATE = date(2026, 9, 21)
# A 10% stock dividend: one new share per ten (corporate_event.ratio = new per existing share).
FPT_EVENT = {
    "provider": "vietcap",
    "event_id": "fpt-2026-stock-dividend",
    "symbol": "FPT",
    "type": "stock_dividend",
    "type_classified": True,
    "ex_date": EX_DATE,
    "ratio": Decimal("0.1"),
}
# An ESOP issue (`other`) adjusts nothing.
FPT_ESOP = {**FPT_EVENT, "event_id": "fpt-esop", "type": "other", "ratio": Decimal("0.02")}
# The FPT capture was trimmed by its publisher to open/close: high/low/volume are not in it.
# These stand-ins keep the raw row valid (low <= open, close <= high) and are checked only
# through the factors, never against a provider value.
FPT_VOLUME = Decimal(1_000_000)


def _capture(name: str) -> list[dict]:
    return json.loads((DATA / name).read_text(), parse_float=Decimal)["data"]


def _raw_rows() -> list[dict]:
    rows = []
    for r in _capture("vndirect_stock_prices_FPT_2026-09-15_23.json"):
        rows.append(
            {
                "symbol": r["code"],
                "trade_date": date.fromisoformat(r["date"]),
                "exchange": "HOSE",  # FPT is listed on HOSE; the trimmed capture lacks `floor`
                "open": r["open"],
                "high": max(r["open"], r["close"]),
                "low": min(r["open"], r["close"]),
                "close": r["close"],
                "volume": FPT_VOLUME,
                "adjusted_close": r["adClose"],
            }
        )
    for r in _capture("vndirect_stock_prices_ABB_2021-12-03.json"):
        rows.append(
            {
                "symbol": r["code"],
                "trade_date": date.fromisoformat(r["date"]),
                "exchange": r["floor"],
                "open": r["open"],
                "high": r["high"],
                "low": r["low"],
                "close": r["close"],
                "volume": Decimal(r["nmVolume"]),
                "adjusted_close": r["adClose"],
            }
        )
    return rows


def _seed(url: str) -> None:
    engine = ensure_schema(url)
    upsert(engine, stock_eod, _raw_rows())
    upsert(engine, tables.corporate_event, [FPT_EVENT, FPT_ESOP])


def _materialize(url: str, **settings) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [adjusted_eod_asset()],
        resources={
            "worker_config": WorkerConfigResource(database_url=url),
            "database": DatabaseResource(url=url),
        },
        run_config={"ops": {WORKER_ID: {"config": settings}}} if settings else None,
    )


def _stored(url: str) -> dict[tuple[str, date], dict]:
    with ensure_schema(url).connect() as conn:
        rows = conn.execute(select(stock_eod_adjusted)).mappings().all()
    return {(r["symbol"], r["trade_date"]): dict(r) for r in rows}


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == CHECK_NAME
    return evaluation


def _expected(thousands: Decimal, factor: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 40
        return (thousands * 1000 * factor).quantize(Decimal("0.000001"))


def test_registered_as_derived_worker_and_in_the_derived_defs():
    spec = catalogue()[WORKER_ID]
    assert spec.kind == "derived"
    assert spec.settings().symbols == []
    assert adjusted_eod_asset() in derived_defs.defs().assets
    assert adjusted_eod_asset().check_keys == {
        dg.AssetCheckKey(dg.AssetKey([WORKER_ID]), CHECK_NAME)
    }


def test_adjusted_prices_are_the_exact_backward_factors_and_reconcile(database_url):
    _seed(database_url)
    result = _materialize(database_url)
    assert result.success
    stored = _stored(database_url)
    assert len(stored) == 8  # 7 FPT days and one ABB day
    with localcontext() as ctx:
        ctx.prec = 40
        factor = Decimal(1) / Decimal("1.1")
    for raw in _raw_rows():
        row = stored[raw["symbol"], raw["trade_date"]]
        before = raw["symbol"] == "FPT" and raw["trade_date"] < EX_DATE
        f = factor if before else Decimal(1)
        assert row["factor"] == f.quantize(Decimal("1e-18")), raw
        assert row["share_factor"] == row["factor"]  # a stock dividend: shares as prices
        for name in ("open", "high", "low", "close"):
            assert row[name] == _expected(raw[name], f), (raw, name)
        with localcontext() as ctx:
            ctx.prec = 40
            assert row["volume"] == (raw["volume"] / f).quantize(Decimal("0.000001"))
        assert row["provider"] == "vndirect"
        assert row["provider_adjusted_close"] == raw["adjusted_close"] * 1000
    # 72.7 thousand on 2026-09-15 is 66,090.909091 VND adjusted; VNDIRECT says 66,092
    # (its factor rounded to 0.9091): within one step, so the check passes on the capture.
    assert stored["FPT", date(2026, 9, 15)]["close"] == Decimal("66090.909091")
    assert stored["ABB", date(2021, 12, 3)]["close"] == Decimal(21400)
    evaluation = _check(result)
    assert evaluation.passed
    assert evaluation.metadata["days_compared"].value == 8
    assert evaluation.metadata["days_over_one_step"].value == 0
    # The raw table is untouched: still thousands of VND, VNDIRECT's own adjusted close.
    with ensure_schema(database_url).connect() as conn:
        raw_close = conn.execute(
            select(stock_eod.c.close, stock_eod.c.adjusted_close).where(
                stock_eod.c.symbol == "FPT", stock_eod.c.trade_date == date(2026, 9, 15)
            )
        ).one()
    assert (raw_close.close, raw_close.adjusted_close) == (Decimal("72.7"), Decimal("66.092"))
    # Idempotent: a second run changes nothing.
    again = _materialize(database_url)
    mat = again.asset_materializations_for_node(WORKER_ID)[0]
    assert mat.metadata["rows_unchanged"].value == 8
    assert mat.metadata["rows_inserted"].value == mat.metadata["rows_updated"].value == 0


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
def test_the_check_names_the_day_a_provider_price_is_off_by_more_than_a_step(backend, request):
    url = request.getfixturevalue(f"{backend}_url")
    _seed(url)
    engine = ensure_schema(url)
    # VNDIRECT's adjusted close on 2026-09-17 off by 0.2 thousand (200 VND, two steps of 100).
    with engine.begin() as conn:
        conn.execute(
            update(stock_eod)
            .where(stock_eod.c.symbol == "FPT", stock_eod.c.trade_date == date(2026, 9, 17))
            .values(adjusted_close=Decimal("67.746"))
        )
    evaluation = _check(_materialize(url))
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["days_over_one_step"].value == 1
    (day,) = evaluation.metadata["days"].value
    assert day.startswith("FPT 2026-09-17: 67545.454545 vs 67746")


def test_a_new_event_re_derives_the_symbols_history(sqlite_url):
    engine = ensure_schema(sqlite_url)
    upsert(engine, stock_eod, _raw_rows())
    first = _materialize(sqlite_url)
    # Without the event every FPT day before the ex-date differs from VNDIRECT's adjusted close.
    assert not _check(first).passed
    assert _check(first).metadata["days_over_one_step"].value == 4
    assert _stored(sqlite_url)["FPT", date(2026, 9, 15)]["close"] == Decimal(72700)
    upsert(engine, tables.corporate_event, [FPT_EVENT])
    second = _materialize(sqlite_url)
    assert _check(second).passed
    mat = second.asset_materializations_for_node(WORKER_ID)[0]
    assert mat.metadata["rows_updated"].value == 4
    assert _stored(sqlite_url)["FPT", date(2026, 9, 15)]["close"] == Decimal("66090.909091")


def test_a_symbol_whose_events_cannot_be_applied_is_named_and_not_derived(sqlite_url):
    _seed(sqlite_url)
    rights = {**FPT_EVENT, "event_id": "fpt-rights", "type": "rights_issue"}
    upsert(ensure_schema(sqlite_url), tables.corporate_event, [rights])
    result = _materialize(sqlite_url)
    mat = result.asset_materializations_for_node(WORKER_ID)[0]
    skipped = mat.metadata["symbols_skipped"].value
    assert list(skipped) == ["FPT"] and "subscription price" in skipped["FPT"]
    assert {symbol for symbol, _ in _stored(sqlite_url)} == {"ABB"}


# ---- automation -----------------------------------------------------------------------------

ADJUSTED = dg.AssetKey([WORKER_ID])


def test_its_upstreams_are_the_real_price_and_event_assets():
    from ingestion_pipelines import definitions

    graph = definitions.build_definitions().resolve_asset_graph()
    for key in (dg.AssetKey(["vn_stock_eod"]), dg.AssetKey(["vn_corporate_events"])):
        assert graph.get(key).is_materializable, key
        assert ADJUSTED in graph.get(key).child_keys


def test_requested_when_prices_or_events_arrive_and_only_then():
    defs = dg.Definitions.merge(
        derived_defs.defs(),
        dg.Definitions(
            resources={
                "worker_config": WorkerConfigResource(database_url="sqlite://"),
                "database": DatabaseResource(url="sqlite://"),
            }
        ),
    )
    instance = dg.DagsterInstance.ephemeral()
    cursor = None

    def tick() -> bool:
        nonlocal cursor
        result = dg.evaluate_automation_conditions(
            defs=defs,
            instance=instance,
            asset_selection=dg.AssetSelection.assets(ADJUSTED),
            cursor=cursor,
        )
        cursor = result.cursor
        return result.total_requested == 1

    assert not tick()  # nothing arrived upstream
    assert not tick()
    instance.report_runless_asset_event(
        dg.AssetMaterialization(dg.AssetKey(["vn_stock_eod"]), partition="2026-09-21")
    )
    assert tick()  # a day of prices
    instance.report_runless_asset_event(dg.AssetMaterialization(ADJUSTED))
    assert not tick()
    instance.report_runless_asset_event(
        dg.AssetMaterialization(dg.AssetKey(["vn_corporate_events"]))
    )
    assert tick()  # new events


def test_small_batches_and_a_symbol_list_give_the_same_rows(sqlite_url, tmp_path):
    _seed(sqlite_url)
    assert _materialize(sqlite_url).success
    whole = _stored(sqlite_url)
    other = f"sqlite:///{tmp_path / 'batched.db'}"
    _seed(other)
    result = _materialize(other, batch_size=3, symbols=["FPT"])
    mat = result.asset_materializations_for_node(WORKER_ID)[0]
    assert mat.metadata["symbols"].value == 1
    batched = _stored(other)
    assert set(batched) == {k for k in whole if k[0] == "FPT"}
    assert all(batched[k] == whole[k] for k in batched)
