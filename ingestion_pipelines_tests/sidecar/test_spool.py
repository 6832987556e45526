"""The disk spool: exact round trip, a torn tail after kill -9, and a clear error when full."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ingestion_pipelines.sidecar.spool import Spool, SpoolFull


def _row(i: int) -> dict:
    return {
        "source": "binance",
        "symbol": "BTCUSDT",
        "trade_id": i,
        "price": Decimal("43210.12000000"),
        "quantity": Decimal("0.00000001"),
        "side": "sell",
        "traded_at": datetime(2026, 4, 14, 6, 32, 7, 431000, tzinfo=UTC),
        "received_at": datetime(2026, 4, 14, 6, 32, 7, 433123, tzinfo=UTC),
    }


def test_round_trip_is_exact(tmp_path):
    spool = Spool(tmp_path / "s")
    spool.append("trade_tick", "ignore", [_row(1), _row(2)])
    spool.append("trade_tick", "ignore", [_row(3)])
    spool.close()
    records = [r for path in spool.replay_files() for r in Spool.records(path)]
    assert [r[2] for r in records] == [[_row(1), _row(2)], [_row(3)]]
    assert records[0][:2] == ("trade_tick", "ignore")


def test_torn_tail_is_skipped(tmp_path):
    spool = Spool(tmp_path / "s")
    spool.append("trade_tick", "ignore", [_row(1)])
    spool.append("trade_tick", "ignore", [_row(2)])
    spool.close()
    data = spool.path.read_bytes()
    spool.path.write_bytes(data[:-7])  # the last write cut short by kill -9
    (path,) = spool.replay_files()
    assert [r[2] for r in Spool.records(path)] == [[_row(1)]]
    corrupt = bytearray(data)
    corrupt[12] ^= 0xFF  # a flipped byte in the first payload: CRC mismatch, nothing read
    path.write_bytes(bytes(corrupt))
    assert list(Spool.records(path)) == []


def test_full_spool_raises_a_clear_error(tmp_path):
    spool = Spool(tmp_path / "s", max_bytes=600)
    spool.append("trade_tick", "ignore", [_row(1)])
    with pytest.raises(SpoolFull, match="spool .* is full"):
        for i in range(10):
            spool.append("trade_tick", "ignore", [_row(i)])
    assert spool.size() <= 600
