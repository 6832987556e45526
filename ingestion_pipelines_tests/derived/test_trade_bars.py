"""`trade_bars_1m` (Binance) and `ssi_trade_bars_1m` (the Vietnamese market, on trading days):
exact OHLCV per ICT day, idempotent, each its own sources, and automated after a feed day."""

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import dagster as dg
from sqlalchemy import select

from ingestion_pipelines.config.workers import catalogue
from ingestion_pipelines.derived import defs as derived_defs
from ingestion_pipelines.derived.ssi_bars import SSI_WORKER_ID, ssi_trade_bars_asset
from ingestion_pipelines.derived.trade_bars import WORKER_ID, trade_bars_asset
from ingestion_pipelines.feeds import defs as feed_defs
from ingestion_pipelines.resources.database import DatabaseResource
from ingestion_pipelines.resources.worker_config import WorkerConfigResource
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import trade_bar_1m, trade_tick
from ingestion_pipelines.storage.upsert import upsert

ICT = ZoneInfo("Asia/Ho_Chi_Minh")
BARS = dg.AssetKey([WORKER_ID])


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def tick(trade_id, at, price, qty, *, source="binance", symbol="BTCUSDT", side="buy"):
    return {
        "source": source,
        "symbol": symbol,
        "trade_id": trade_id,
        "price": Decimal(price),
        "quantity": Decimal(qty),
        "side": side,
        "traded_at": at,
        "received_at": at,
    }


# ICT day 2025-06-02 is [2025-06-01 17:00 UTC, 2025-06-02 17:00 UTC).
TICKS = [
    tick(10, utc(2025, 6, 1, 16, 59, 59, 999000), "99.00", "7"),  # 23:59:59.999 ICT June 1
    # inserted out of order on purpose: open/close follow (traded_at, trade_id)
    tick(12, utc(2025, 6, 1, 17, 0, 0), "100.20", "0.25"),  # 00:00:00 ICT June 2
    tick(11, utc(2025, 6, 1, 17, 0, 0), "100.10", "0.5"),
    tick(13, utc(2025, 6, 1, 17, 0, 10), "101.5", "0.1"),
    tick(15, utc(2025, 6, 1, 17, 0, 59, 500000), "100.40", "0.2"),
    tick(14, utc(2025, 6, 1, 17, 0, 59, 500000), "100.30", "1.000000001"),
    tick(16, utc(2025, 6, 1, 17, 1, 0), "100.3", "2"),
    tick(17, utc(2025, 6, 2, 16, 59, 59, 999999), "105", "3"),  # 23:59:59.999999 ICT June 2
    tick(18, utc(2025, 6, 2, 17, 0, 0), "106", "1"),  # 00:00 ICT June 3
    tick(1, utc(2025, 6, 2, 2, 15, 30), "120.5", "100", source="ssi", symbol="FPT", side="none"),
]


def _resources(url: str) -> dict:
    return {
        "worker_config": WorkerConfigResource(database_url=url),
        "database": DatabaseResource(url=url),
    }


def _run(url: str, partition: str | None = None, tags: dict | None = None, *, ssi=False) -> dict:
    asset = ssi_trade_bars_asset() if ssi else trade_bars_asset()
    result = dg.materialize([asset], partition_key=partition, resources=_resources(url), tags=tags)
    assert result.success
    # a partition range (backfill) is one run reporting each of its partitions
    mat = result.asset_materializations_for_node(SSI_WORKER_ID if ssi else WORKER_ID)[0]
    return {k: v.value for k, v in mat.metadata.items()}


def _bars(url: str) -> dict[tuple, tuple]:
    with ensure_schema(url).connect() as conn:
        rows = conn.execute(select(trade_bar_1m)).mappings().all()
    return {
        (r["source"], r["symbol"], r["bar_start"]): (
            r["open"],
            r["high"],
            r["low"],
            r["close"],
            r["volume"],
            r["trade_count"],
        )
        for r in rows
    }


def test_registered_as_derived_worker():
    spec = catalogue()[WORKER_ID]
    assert spec.kind == "derived"
    assert "batch_size" in spec.settings.model_fields


def test_bars_of_an_ict_day_are_exact_and_idempotent(database_url):
    upsert(ensure_schema(database_url), trade_tick, TICKS)

    first = _run(database_url, "2025-06-02")
    assert first["trades_read"] == 7
    assert (first["bars_inserted"], first["bars_updated"], first["bars_unchanged"]) == (3, 0, 0)
    assert first["symbol_list"] == ["binance:BTCUSDT"]  # SSI's bars are ssi_trade_bars_1m's
    ssi = _run(database_url, "2025-06-02", ssi=True)
    assert (ssi["trades_read"], ssi["bars_inserted"]) == (1, 1)
    assert ssi["symbol_list"] == ["ssi:FPT"]

    d = Decimal
    assert _bars(database_url) == {
        ("binance", "BTCUSDT", utc(2025, 6, 1, 17, 0)): (
            d("100.10"),
            d("101.5"),
            d("100.10"),
            d("100.40"),
            d("2.050000001"),
            5,
        ),
        ("binance", "BTCUSDT", utc(2025, 6, 1, 17, 1)): (
            d("100.3"),
            d("100.3"),
            d("100.3"),
            d("100.3"),
            d("2"),
            1,
        ),
        ("binance", "BTCUSDT", utc(2025, 6, 2, 16, 59)): (
            d("105"),
            d("105"),
            d("105"),
            d("105"),
            d("3"),
            1,
        ),
        ("ssi", "FPT", utc(2025, 6, 2, 2, 15)): (
            d("120.5"),
            d("120.5"),
            d("120.5"),
            d("120.5"),
            d("100"),
            1,
        ),
    }

    again = _run(database_url, "2025-06-02")
    assert (again["bars_inserted"], again["bars_updated"], again["bars_unchanged"]) == (0, 0, 3)
    assert _run(database_url, "2025-06-02", ssi=True)["bars_unchanged"] == 1

    # A late trade (a gap filled from REST) changes only its own bar.
    upsert(
        ensure_schema(database_url), trade_tick, [tick(19, utc(2025, 6, 1, 17, 1, 30), "99", "1")]
    )
    late = _run(database_url, "2025-06-02")
    assert (late["bars_inserted"], late["bars_updated"], late["bars_unchanged"]) == (0, 1, 2)
    bar = _bars(database_url)[("binance", "BTCUSDT", utc(2025, 6, 1, 17, 1))]
    assert bar == (d("100.3"), d("100.3"), d("99"), d("99"), d("3"), 2)


def test_midnight_trades_belong_to_their_ict_day(sqlite_url):
    upsert(ensure_schema(sqlite_url), trade_tick, TICKS)
    assert _run(sqlite_url, "2025-06-01")["trades_read"] == 1
    assert _run(sqlite_url, "2025-06-03")["trades_read"] == 1
    bars = _bars(sqlite_url)
    assert bars[("binance", "BTCUSDT", utc(2025, 6, 1, 16, 59))][3] == Decimal("99.00")
    assert bars[("binance", "BTCUSDT", utc(2025, 6, 2, 17, 0))][3] == Decimal("106")
    assert len(bars) == 2


def test_a_backfill_range_runs_once_over_all_its_days(sqlite_url):
    upsert(ensure_schema(sqlite_url), trade_tick, TICKS)
    meta = _run(
        sqlite_url,
        tags={
            "dagster/asset_partition_range_start": "2025-06-01",
            "dagster/asset_partition_range_end": "2025-06-03",
        },
    )
    assert meta["trades_read"] == len(TICKS) - 1  # all but SSI's
    assert meta["bars_inserted"] == 5
    assert len(_bars(sqlite_url)) == 5


def test_a_day_without_trades_writes_nothing(sqlite_url):
    meta = _run(sqlite_url, "2025-06-05")
    assert meta["trades_read"] == 0 and meta["bars"] == 0


def test_disabled_worker_fails_the_run(sqlite_url, monkeypatch):
    monkeypatch.setenv("INGEST_TRADE_BARS_1M__ENABLED", "false")
    result = dg.materialize(
        [trade_bars_asset()],
        partition_key="2025-06-02",
        resources=_resources(sqlite_url),
        raise_on_error=False,
    )
    assert not result.success


# ---- automation ---------------------------------------------------------------------------


def _defs() -> dg.Definitions:
    return dg.Definitions.merge(
        feed_defs.defs(),
        derived_defs.defs(),
        dg.Definitions(resources=_resources("sqlite://")),
    )


def _report(instance: dg.DagsterInstance, feed: str, day: str) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=dg.AssetKey([feed]), partition=day)
    )


def test_bars_are_requested_once_a_feed_day_completes():
    defs = _defs()
    instance = dg.DagsterInstance.ephemeral()
    cursor = None

    def tick_at(*ict_time) -> set:
        nonlocal cursor
        result = dg.evaluate_automation_conditions(
            defs=defs,
            instance=instance,
            asset_selection=dg.AssetSelection.assets(BARS),
            evaluation_time=datetime(*ict_time, tzinfo=ICT),
            cursor=cursor,
        )
        cursor = result.cursor
        return set(result.get_requested_partitions(BARS))

    assert tick_at(2025, 6, 2, 12, 0) == set()  # nothing reported for June 1
    _report(instance, "binance_trades", "2025-06-02")  # ticks arrive during June 2
    assert tick_at(2025, 6, 2, 23, 0) == set()  # June 2 is not over
    assert tick_at(2025, 6, 3, 0, 1) == set()  # over, but the sidecar is still flushing
    # 00:05 ICT: June 2 is requested although ssi_iboard reported nothing that day.
    assert tick_at(2025, 6, 3, 0, 6) == {"2025-06-02"}
    assert tick_at(2025, 6, 3, 0, 7) == set()  # handled
    _report(instance, "binance_trades", "2025-06-03")  # the new day: no effect on June 2
    assert tick_at(2025, 6, 3, 0, 8) == set()
    _report(instance, "binance_trades", "2025-06-02")  # a late report of June 2
    assert tick_at(2025, 6, 3, 0, 9) == {"2025-06-02"}


def test_no_bars_requested_for_a_day_no_feed_reported():
    defs = _defs()
    instance = dg.DagsterInstance.ephemeral()
    result = dg.evaluate_automation_conditions(
        defs=defs,
        instance=instance,
        asset_selection=dg.AssetSelection.assets(BARS),
        evaluation_time=datetime(2025, 6, 3, 0, 6, tzinfo=ICT),
    )
    result = dg.evaluate_automation_conditions(
        defs=defs,
        instance=instance,
        asset_selection=dg.AssetSelection.assets(BARS),
        evaluation_time=datetime(2025, 6, 3, 0, 10, tzinfo=ICT),
        cursor=result.cursor,
    )
    assert result.total_requested == 0


def test_derived_defs_load_with_a_running_automation_sensor():
    defs = _defs()
    dg.Definitions.validate_loadable(defs)
    sensor = defs.resolve_sensor_def(derived_defs.AUTOMATION_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    node = defs.resolve_asset_graph().get(BARS)
    assert node.group_name == "derived"
    # every non-market feed writing trade_tick (Binance, OKX, Bybit)
    assert {k.path[0] for k in node.parent_keys} == {"binance_trades", "okx_trades", "bybit_trades"}
    assert node.partitions_def.timezone == "Asia/Ho_Chi_Minh"
    ssi = defs.resolve_asset_graph().get(dg.AssetKey([SSI_WORKER_ID]))
    assert ssi.group_name == "derived"
    assert {k.path[0] for k in ssi.parent_keys} == {"ssi_iboard"}


def test_reconciliation_check_passes_over_live_bars_and_reports_a_difference(
    database_url, tmp_path
):
    """The sidecar's writer keeps the bars live; the daily run finds nothing to change (the check
    passes); a bar changed behind its back is reported (failed check, metadata) and fixed."""
    from sqlalchemy import update

    from ingestion_pipelines.derived.trade_bars import LIVE_BARS_CHECK
    from ingestion_pipelines.sidecar.spool import Spool
    from ingestion_pipelines.sidecar.writer import Writer

    writer = Writer(database_url, spools=lambda feed: Spool(tmp_path / feed)).start()
    try:
        for batch in (TICKS[:4], TICKS[4:7], TICKS[7:], TICKS[2:5]):  # a re-sent batch too
            assert writer.submit("binance_trades", "trade_tick", [dict(t) for t in batch])
            assert writer.flush(20)
    finally:
        writer.stop()

    def run() -> tuple[dict, dg.AssetCheckEvaluation]:
        result = dg.materialize(
            [trade_bars_asset()], partition_key="2025-06-02", resources=_resources(database_url)
        )
        assert result.success
        [evaluation] = result.get_asset_check_evaluations()
        assert evaluation.check_name == LIVE_BARS_CHECK
        mat = result.asset_materializations_for_node(WORKER_ID)[0]
        return {k: v.value for k, v in mat.metadata.items()}, evaluation

    metadata, evaluation = run()
    assert evaluation.passed and metadata["bar_differences"] == 0
    assert (metadata["bars_inserted"], metadata["bars_updated"]) == (0, 0)
    minute = utc(2025, 6, 1, 17, 0)
    with ensure_schema(database_url).begin() as conn:
        conn.execute(
            update(trade_bar_1m)
            .where(trade_bar_1m.c.bar_start == minute)
            .values(close=Decimal("1"))
        )
    metadata, evaluation = run()
    assert not evaluation.passed and metadata["bars_updated"] == 1
    [difference] = evaluation.metadata["difference_sample"].value
    assert difference["stored"]["close"] == "1" and difference["recomputed"]["close"] == "100.4"
    assert _bars(database_url)[("binance", "BTCUSDT", minute)][3] == Decimal("100.40")
    assert run()[1].passed
