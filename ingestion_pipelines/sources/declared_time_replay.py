"""The replay of a declared source read by time (`paginators.TimeCursor`): the records a request's
time range asks for, of the series it names, as the service cuts them.

    replay:
      file: klines_BTCUSDT_1m_replay.json
      series: {param: symbol, recorded: BTCUSDT}   # the file is BTCUSDT's
      time_range: {path: "0", start: startTime, end: endTime, limit: limit,
                    default_limit: 500, max_limit: 1000}

A request gets the records whose time (at `path`) is within [start, end] (both inclusive, as
Binance's klines are), the first `limit` of them (`default_limit` when none is asked, at most
`max_limit`; beyond it the service answers 400). A series in ``payload.extra["series"][<value>]``
(tests and benchmarks set them: a list, or a `replay.klines.KlineSeries`) is served from there;
else the file serves the `recorded` series, and any other is empty, as a listed symbol with no
data in the range answers.
"""

from __future__ import annotations

from typing import Any

from ingestion_pipelines.sources.declared_each import as_mapping
from ingestion_pipelines.sources.paginators import at_path


def series_records(replay: dict[str, Any], payload, query: dict[str, str]) -> Any:
    """The records of the series the request names (all of the file's without `series`): a
    list, or a function (first, last, limit) -> records computing them (a generated series)."""
    series = replay.get("series")
    if not series:
        return payload.records
    asked = query.get(series["param"], "")
    served = payload.extra.get("series") or {}
    if asked in served:
        return served[asked]
    return payload.records if asked == series.get("recorded") else []


def time_range_page(replay: dict[str, Any], payload, query: dict[str, str]) -> list[Any]:
    """The records a time-range request asks for; a ValueError for bad parameters (a 400).
    The payload's `page_cap` applies whatever was asked (a server returning fewer)."""
    rule = replay["time_range"]
    limit = int(query.get(rule.get("limit", "limit")) or rule.get("default_limit", 500))
    if not 1 <= limit <= int(rule.get("max_limit", 1000)):
        raise ValueError(f"limit {limit} out of range")
    limit = min(limit, payload.page_cap or limit)
    start = query.get(rule.get("start", "startTime"))
    end = query.get(rule.get("end", "endTime"))
    first = int(start) if start else None
    last = int(end) if end else None
    records = series_records(replay, payload, query)
    if callable(records):
        return records(first, last, limit)
    page = []
    for record in records:
        moment = int(at_path(as_mapping(record), rule.get("path", "0")))
        if (first is None or moment >= first) and (last is None or moment <= last):
            page.append(record)
            if len(page) == limit:
                break
    return page
