"""Records outside a run's window dropped before validation, as a declared source asks with
``partitions: {..., window_filter: true}``: an API that answers with more days than asked (the
whole history for a long backfill) then costs no validation, and the run no "records outside the
window" warning, for the days it never wanted.

A record's day is read from its date column's field (its path and date format) the way the record
model reads it: epoch stamps as their UTC day for a ``date`` column, in the window's timezone
otherwise; ``yyyymmdd`` and ISO text by their first characters. A record whose day cannot be read
is kept: the record model rejects it, with its reason, into `dead_letter`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ingestion_pipelines.sources.paginators import at_path
from ingestion_pipelines.storage.declared import table_columns


def record_day(raw: Any, fmt: str | None, kind: str, timezone: str) -> date | None:
    """The day of a raw date value (None when it cannot be read)."""
    try:
        if fmt in ("epoch_s", "epoch_ms"):
            seconds = int(str(raw).strip()) / (1000 if fmt == "epoch_ms" else 1)
            moment = datetime.fromtimestamp(seconds, UTC)
            return moment.date() if kind == "date" else moment.astimezone(ZoneInfo(timezone)).date()
        if fmt == "yyyymmdd":
            return datetime.strptime(str(raw).strip(), "%Y%m%d").date()
        return date.fromisoformat(str(raw)[:10])
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def within_window(source, found: Iterable[Any]) -> Iterator[Any]:
    """The found records (`declared_body.Found`) of `source`'s run window, or all of them when
    its declaration does not ask for the filter (or the run has no window)."""
    partitions = source.spec.partitions
    window = source.window
    if partitions is None or not partitions.window_filter or window is None:
        yield from found
        return
    column = source.date_column
    how = source.spec.field(column)
    kind = _column_kind(source, column)
    for each in found:
        raw = at_path(each.relabelled(), how.path or column)
        day = record_day(raw, how.format, kind, window.timezone)
        if day is None or window.contains(day):
            yield each


def _column_kind(source, column: str) -> str:
    """The declared kind of the column (``date``, ``utc_datetime``)."""
    kinds = {c.name: c.type for c in table_columns(source.spec.model_dump())}
    return kinds.get(column, "date")
