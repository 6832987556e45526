"""Expected values of the workers declared with the chain poll hook for the standard tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ingestion_pipelines.sources.declared_family import hooked_sources
from ingestion_pipelines.sources.mempool.chain import ChainPoll
from ingestion_pipelines.sources.mempool.replay import FEES_PATH, TIP_HEIGHT_PATH
from ingestion_pipelines.sources.testing import Standard


def check_poll(source):
    """A check that the worker stored one row holding the four recorded answers, exact."""

    def check(crawler, _partition) -> None:
        (row,) = crawler.rows(source.table)
        _check_row(row)

    return check


def _check_row(row) -> None:
    """The recorded answers, exact; ms and s timestamps each read right."""
    assert row["provider"] == "mempool.space"
    fees = [row[f"fee_{n}"] for n in ("fastest", "half_hour", "hour", "economy", "minimum")]
    assert fees == [Decimal(3), Decimal(1), Decimal(1), Decimal(1), Decimal(1)]
    assert (row["mempool_tx_count"], row["mempool_vsize"], row["mempool_total_fee_sat"]) == (
        811,
        412270,
        3632256,
    )
    assert row["extra"]["fee_histogram"][0] == ["10.029498", 50229]
    assert row["tip_height"] == 957697
    assert row["difficulty_progress_pct"] == Decimal("4.81")
    assert row["difficulty_change_pct"] == Decimal("-4.87")
    assert row["previous_retarget_pct"] == Decimal("-5.00")
    # estimatedRetargetDate 1785069074486 ms; previousTime 1783800551 s
    assert row["estimated_retarget_at"] == datetime(2026, 7, 26, 12, 31, 14, 486000, tzinfo=UTC)
    assert row["previous_retarget_at"] == datetime(2026, 7, 11, 20, 9, 11, tzinfo=UTC)
    assert (row["remaining_blocks"], row["next_retarget_height"]) == (1919, 959616)
    assert row["extra"]["remainingTime"] == 1212796486 and row["extra"]["timeOffset"] == 0
    assert abs(row["captured_at"] - datetime.now(UTC)).total_seconds() < 600


def break_fees(dataset, _partition) -> None:
    """A negative fee rate: the poll's one record is invalid."""
    dataset.chain_answers[FEES_PATH] = (
        b'{"fastestFee":-3,"halfHourFee":1,"hourFee":1,"economyFee":1,"minimumFee":1}',
        "application/json",
    )


STANDARD = {
    worker_id: Standard(check_poll(source), break_fees, TIP_HEIGHT_PATH, rerun="snapshot")
    for worker_id, source in hooked_sources(ChainPoll).items()
}
