"""Per-request parts of a declared source that come from its settings rather than a table: the
settings-list form of `request.for_each` and array records.

    settings:
      symbols:
        default: [{symbol: BTCUSDT, listed: "2017-08-17"}, {symbol: ETHUSDT, listed: "2017-08-17"}]
    request:
      query: {symbol: "{row.symbol}"}
      for_each: {settings: symbols, within: [listed, delisted]}   # one request per item
    fields: {symbol: {value: "{row.symbol}"}}   # every record of that request carries it

An item outside the run's window (listed after its last day, delisted before its start) sends no
request, as the table form does. A record that is a JSON array (``[1554991200000, "4986.23", ...]``,
Binance's klines) is read as a mapping of its indexes (``"0"``, ``"1"``, ...): fields name them as
paths, and the positions no field reads stay in ``extra`` under their index.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from ingestion_pipelines.sources.base import SourceError


def settings_rows(for_each, settings, window) -> list[dict[str, Any]]:
    """The items of the list setting `for_each.settings` meeting the window (`within`)."""
    items = getattr(settings, for_each.settings, None)
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise SourceError(
            f"for_each: setting {for_each.settings!r} must be a list of mappings, got {items!r}"
        )
    rows = [dict(item) for item in items]
    if for_each.within is None or window is None:
        return rows
    first, last = for_each.within
    return [row for row in rows if _meets(row, first, last, window)]


def _meets(row: Mapping[str, Any], first: str, last: str, window) -> bool:
    """Whether the item's span [first, last] meets the window (an empty bound is open)."""
    since, until = _day(row.get(first), first), _day(row.get(last), last)
    return (since is None or since <= window.last_day) and (until is None or until >= window.start)


def _day(value: Any, name: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise SourceError(f"for_each: {name} {value!r} is not a date (YYYY-MM-DD)") from None


def as_mapping(item: Any) -> Any:
    """A JSON-array record as a mapping of its indexes (``{"0": ..., "1": ...}``); others as is."""
    if isinstance(item, list):
        if len(item) > len(_INDEXES):
            return {str(i): v for i, v in enumerate(item)}
        return dict(zip(_INDEXES, item, strict=False))
    return item


_INDEXES = tuple(str(i) for i in range(64))  # the keys of array records, made once
