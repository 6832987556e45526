"""The simulator of alternative.me's Crypto Fear & Greed Index (``GET /fng/``), the replay its
declaration names (``replay.answer: ingestion_pipelines.replay.fng:answer``; see
sources/declared_answer.py): one recording cannot serve every day a daily index is asked for.

One value per UTC day since 2018-02-01, a deterministic function of the date; the recorded days
(the declaration's recording, the API's documented example) are served as recorded. Like the real
API: values and timestamps are strings, timestamps are UTC midnights in epoch seconds (or a
formatted date with ``date_format``), newest first, ``limit=1`` by default and ``limit=0`` for
the whole history, and only the newest entry carries ``time_until_update``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from ingestion_pipelines.replay.determinism import unit_hash
from ingestion_pipelines.replay.routes import ReplayRequest, Response, dataset_part

if TYPE_CHECKING:
    from ingestion_pipelines.replay.dataset import ReplayDataset
    from ingestion_pipelines.sources.declared_replay import RecordedPayload

NAME = "Fear and Greed Index"
FIRST_DAY = date(2018, 2, 1)
DATE_FORMATS = {"us": "%m-%d-%Y", "cn": "%Y-%m-%d", "kr": "%Y-%m-%d", "world": "%d-%m-%Y"}


def value_for(day: date) -> int:
    """The index on a UTC day: slow market cycles plus day-to-day noise, within 5..95."""
    t = (day - FIRST_DAY).days
    x = 48 + 22 * math.sin(2 * math.pi * t / 410 + 0.7) + 10 * math.sin(2 * math.pi * t / 61 + 2.1)
    x += 5 * math.sin(2 * math.pi * t / 17 + 0.3) + 9 * (2 * unit_hash(7, day.toordinal()) - 1)
    return int(min(95, max(5, round(x))))


def classify(value: int) -> str:
    """alternative.me's bands (e.g. 25 is Extreme Fear, 26 Fear, 47 Neutral, 76 Extreme Greed)."""
    if value <= 25:
        return "Extreme Fear"
    if value <= 46:
        return "Fear"
    if value <= 54:
        return "Neutral"
    if value <= 75:
        return "Greed"
    return "Extreme Greed"


def utc_midnight(day: date) -> int:
    """The epoch seconds of 00:00 UTC on `day`."""
    return int(datetime.combine(day, time(0), UTC).timestamp())


def error_body(message: str) -> dict[str, Any]:
    """The body alternative.me answers with for an error."""
    return {"name": NAME, "data": [], "metadata": {"error": message}}


def index(
    query: dict[str, str],
    now: datetime,
    value_of: Callable[[date], int | None],
    *,
    stamp_hour: int = 0,
    recorded: dict[date, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON body of /fng/ for ``query`` at ``now``; ``value_of(day)`` None means no entry.
    ``stamp_hour``: the UTC hour of each day's stamp (0 live; 5 in the API's documented example);
    ``recorded``: entries served as they are for their days (their stamp formatted if asked)."""
    recorded = recorded or {}
    raw_limit = (query.get("limit") or "1").strip()
    if not raw_limit.isdigit():
        return error_body("Limit must be an integer greater than or equal to 0.")
    if (query.get("format") or "json").lower() != "json":
        return error_body("Invalid format. Supported formats: json.")
    limit = int(raw_limit)
    date_format = DATE_FORMATS.get((query.get("date_format") or "").lower())

    today = now.astimezone(UTC).date()
    data: list[dict[str, str]] = []
    day, first = today, min([FIRST_DAY, *recorded])
    while day >= first and (limit == 0 or len(data) < limit):
        if day in recorded:
            entry = dict(recorded[day])
            if date_format:
                entry["timestamp"] = day.strftime(date_format)
            data.append(entry)
            day -= timedelta(days=1)
            continue
        value = value_of(day)
        if value is not None:
            stamp = (
                day.strftime(date_format)
                if date_format
                else str(utc_midnight(day) + 3600 * stamp_hour)
            )
            entry = {
                "value": str(value),
                "value_classification": classify(value),
                "timestamp": stamp,
            }
            if not data:
                next_update = datetime.combine(today + timedelta(days=1), time(0), UTC)
                entry["time_until_update"] = str(int((next_update - now).total_seconds()))
            data.append(entry)
        day -= timedelta(days=1)
    return {"name": NAME, "data": data, "metadata": {"error": None}}


class IndexBook:
    """What alternative.me serves: the modelled index and test overrides."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock  # has now()
        self.fng_overrides: dict[date, int | None] = {}
        self.fng_stamp_hour = 0  # alternative.me's documented example stamps at 05:00 UTC

    def fng(self, day: date) -> int | None:
        """The index value /fng/ serves for a UTC day (None: no entry that day)."""
        if day in self.fng_overrides:
            return self.fng_overrides[day]
        if day < FIRST_DAY or day > self.clock.now().astimezone(UTC).date():
            return None
        return value_for(day)


def recorded_days(records: list[Any]) -> dict[date, dict[str, Any]]:
    """The recorded entries by the UTC day of their epoch `timestamp` (others are not served)."""
    days: dict[date, dict[str, Any]] = {}
    for entry in records:
        stamp = str(entry.get("timestamp", "")).strip() if isinstance(entry, dict) else ""
        if stamp.isdigit():
            days[datetime.fromtimestamp(int(stamp), UTC).date()] = entry
    return days


@dataset_part("fng_index", expose=True)
def index_book(dataset: ReplayDataset) -> IndexBook:
    """The Fear & Greed state of a replay dataset (`dataset.fng`, `fng_overrides`, ...)."""
    return IndexBook(dataset)


def answer(request: ReplayRequest, dataset: ReplayDataset, payload: RecordedPayload) -> Response:
    """/fng/ as alternative.me serves it: the model, the test overrides, the recorded days."""
    book = dataset.fng_index
    recorded = {
        day: entry
        for day, entry in recorded_days(payload.records).items()
        if day not in book.fng_overrides
    }
    body = index(
        request.query, dataset.now(), book.fng, stamp_hour=book.fng_stamp_hour, recorded=recorded
    )
    return Response.json(body)
