"""Expected values of `fear_greed` for the standard tests."""

from __future__ import annotations

from datetime import date, timedelta

from ingestion_pipelines.sources.testing import Standard
from ingestion_pipelines.storage import tables

CLASSES = ("Extreme Fear", "Fear", "Neutral", "Greed", "Extreme Greed")


def yesterday_utc(dataset) -> str:
    """The newest complete UTC day."""
    return (dataset.now().date() - timedelta(days=1)).isoformat()


def check_index(crawler, partition) -> None:
    """The day's value, exactly as served."""
    day = date.fromisoformat(partition)
    (row,) = crawler.rows(tables.fear_greed_index)
    assert row["index_date"] == day and row["value"] == crawler.server.dataset.fng(day)
    assert row["classification"] in CLASSES


def break_value(dataset, partition) -> None:
    """The day's value out of 0..100."""
    dataset.fng_overrides[date.fromisoformat(partition)] = 150


STANDARD = {
    "fear_greed": Standard(check_index, break_value, "/fng/", partition=yesterday_utc),
}
