"""`klines_match_trade_bars` on `binance_klines`: Binance's klines equal the bars built from its
trades minute by minute, every differing minute named; open klines and unsettled minutes are not
judged, nor minutes only one side holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import dagster as dg

from ingestion_pipelines.definitions import resources
from ingestion_pipelines.derived.kline_check import CHECK_NAME, kline_bars_check
from ingestion_pipelines.resources.database import DatabaseResource
from ingestion_pipelines.resources.worker_config import WorkerConfigResource
from ingestion_pipelines.sources.declared import load_declared_sources
from ingestion_pipelines.sources.factory import build_source_defs
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema
from ingestion_pipelines.storage.upsert import upsert

VALUES = {
    "open": Decimal("67000.10"),
    "high": Decimal("67010.00"),
    "low": Decimal("66990.01"),
    "close": Decimal("67005.55"),
    "volume": Decimal("1.23400000"),
    "trade_count": 42,
}


def kline(symbol: str, start: datetime, **changed) -> dict:
    return {
        "source": "binance",
        "symbol": symbol,
        "interval": "1m",
        "open_time": start,
        "close_time": start + timedelta(seconds=59.999),
        **VALUES,
        **changed,
    }


def bar(symbol: str, start: datetime, **changed) -> dict:
    return {"source": "binance", "symbol": symbol, "bar_start": start, **VALUES, **changed}


def evaluate(url: str) -> dg.AssetCheckEvaluation:
    asset = build_source_defs(load_declared_sources()["binance_klines"]).asset
    result = dg.materialize(
        [asset, kline_bars_check()],
        selection=dg.AssetSelection.checks(dg.AssetCheckKey(asset.key, CHECK_NAME)),
        resources={
            **resources(),  # the asset's own (http, redis...) are not used by its check
            "worker_config": WorkerConfigResource(database_url=url),
            "database": DatabaseResource(url=url),
        },
    )
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_equal_minutes_pass_and_each_difference_is_named(sqlite_url):
    engine = ensure_schema(sqlite_url)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    hour_ago = now - timedelta(hours=1)
    minutes = [hour_ago + timedelta(minutes=i) for i in range(3)]
    upsert(engine, tables.metadata.tables["kline"], [kline("BTCUSDT", m) for m in minutes])
    upsert(engine, tables.trade_bar_1m, [bar("BTCUSDT", m) for m in minutes])
    # one side only: not judged (the feed was down, or the day not fetched yet)
    upsert(engine, tables.trade_bar_1m, [bar("ETHUSDT", hour_ago)])
    # still open, or not settled: not judged either
    upsert(engine, tables.metadata.tables["kline"], [kline("BTCUSDT", now, close=Decimal(1))])
    upsert(engine, tables.trade_bar_1m, [bar("BTCUSDT", now)])
    passed = evaluate(sqlite_url)
    assert passed.passed and passed.metadata["minutes_compared"].value == 3
    assert passed.metadata["minutes_only_in_trade_bars"].value == 1

    upsert(
        engine,
        tables.trade_bar_1m,
        [
            bar("BTCUSDT", minutes[0], close=Decimal("67005.56")),
            bar("BTCUSDT", minutes[2], volume=Decimal("1.2"), trade_count=41),
        ],
    )
    failed = evaluate(sqlite_url)
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.WARN
    named = failed.metadata["differences"].value
    assert named == [
        f"BTCUSDT {minutes[0]:%Y-%m-%d %H:%M}Z: close 67005.55 vs 67005.56 (kline vs trades)",
        f"BTCUSDT {minutes[2]:%Y-%m-%d %H:%M}Z: volume 1.234 vs 1.2, "
        "trade_count 42 vs 41 (kline vs trades)",
    ]
    assert all(line in failed.description for line in named)
    dispose_all()
