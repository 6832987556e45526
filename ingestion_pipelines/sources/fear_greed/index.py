"""alternative.me Crypto Fear & Greed Index (`GET /fng/`): one value per UTC day.

A record's day is the UTC calendar date of its `timestamp`, whatever its time of day: the API's
own documented example stamps its values at 05:00 UTC (1551157200 is 2019-02-26 05:00 UTC), and
the live service stamps them at 00:00 UTC. The other fields it sends (`time_until_update` on the
newest value) are kept in `extra`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from pydantic import BeforeValidator, Field

from ingestion_pipelines.config.workers import ScheduledSettings
from ingestion_pipelines.sources.base import (
    DailyPartitions,
    Record,
    Request,
    Source,
    SourceError,
    exact_json,
)
from ingestion_pipelines.storage.tables import fear_greed_index

HISTORY_AFTER_DAYS = 60  # further back than this, one request with limit=0 fetches everything


class FearGreedSettings(ScheduledSettings):
    """Where and how `fear_greed` crawls."""

    base_url: str = "https://api.alternative.me"
    cron: str = "15 7 * * *"  # 00:15 UTC, once the UTC day's value is out


def _utc_date(value):
    """An epoch-seconds stamp (number or digits) as its UTC calendar date; other input unchanged,
    for the validator to reject."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC).date()
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"timestamp {value} is out of range") from None
    return value


class FearGreedValue(Record):
    """One day's index value."""

    index_date: Annotated[date, BeforeValidator(_utc_date)] = Field(validation_alias="timestamp")
    value: int = Field(ge=0, le=100)
    classification: str = Field(validation_alias="value_classification", min_length=1)


class FearGreed(Source):
    """The daily Crypto Fear & Greed Index (UTC days since 2018-02-01)."""

    worker_id = "fear_greed"
    group = "crypto"
    table = fear_greed_index
    record = FearGreedValue
    Settings = FearGreedSettings
    partitions = DailyPartitions(start="2018-02-01", timezone="UTC")
    date_column = "index_date"
    fresh_within = timedelta(hours=26)

    def build_requests(self):
        """One request covering the window (`limit=0` for a long history)."""
        days_back = (datetime.now(UTC).date() - self.window.start).days + 1
        limit = 0 if days_back > HISTORY_AFTER_DAYS else max(days_back, 1)
        yield Request("/fng/", params={"limit": limit, "format": "json"})

    def parse(self, response, request):
        """The values of the window; a `metadata.error` fails the run."""
        body = exact_json(response)
        error = (
            (body.get("metadata") or {}).get("error")
            if isinstance(body, dict)
            else "not a JSON object"
        )
        if error:
            raise SourceError(f"metadata.error: {error}")
        for item in body.get("data") or []:
            day = _utc_day(item.get("timestamp"))
            if day is None or self.window.contains(day):
                yield item  # unreadable timestamps go on to the record model, and dead_letter


def _utc_day(stamp) -> date | None:
    try:
        day = _utc_date(stamp)
    except ValueError:
        return None
    return day if isinstance(day, date) else None
