"""The standard tests' expected values of a source declared in YAML, derived from its declaration.

``expect`` in its defs.yaml::

    expect:
      records: 295                              # the recorded payload holds this many records
      rerun: snapshot                           # unchanged (default) | not_modified | snapshot
      bad_record: {index: 3, set: {current_price: -1}}   # makes one served record invalid
                                                # (an HTML page: {replace: [old, new]}, once)
      partition: "2019-02-26"                   # a partitioned source: the day its recording holds
      seed: {stock: [{symbol: ABB, ...}]}       # rows its for_each table holds before it runs
      seed: {worker: vn_stocks}                 # ... or the worker filling it, run first

      rows: [{product: Vàng SJC, branch: Hà Nội, buy: "40720000"}]   # values stored exactly

The check compares every stored row with the record served for it, column by column, from the raw
JSON (not through the record model): decimals exactly, times and dates as the source wrote them
(after the field's map, unit or date format); the fields no column reads are in ``extra``. A partitioned source's check compares the served
records of the partition's day only (the others are out of the run's window).
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter

from ingestion_pipelines.replay import routes
from ingestion_pipelines.sources.declared_body import Found, found_records, served_whole
from ingestion_pipelines.sources.declared_each import as_mapping
from ingestion_pipelines.sources.declared_html import break_page
from ingestion_pipelines.sources.declared_seed import seed_of
from ingestion_pipelines.sources.declared_values import (
    classified,
    converted,
    set_value,
    template_scopes,
)
from ingestion_pipelines.sources.paginators import at_path
from ingestion_pipelines.sources.testing import Standard
from ingestion_pipelines.storage.declared import table_columns


def served_value(kind: str, raw: Any, fmt: str | None, scale: Decimal | None) -> Any:
    """What a stored column must hold for the raw value served."""
    if raw is None:
        return None
    if fmt in ("epoch_s", "epoch_ms"):
        moment = datetime.fromtimestamp(int(raw) / (1000 if fmt == "epoch_ms" else 1), UTC)
        return moment.date() if kind == "date" else moment
    if kind == "decimal":
        value = Decimal(repr(raw)) if isinstance(raw, float) else Decimal(str(raw))
        return value * scale if scale is not None else value
    if kind in ("integer", "bigint"):
        return int(raw)
    if kind == "boolean":  # "true", 1, True: as the record model reads a boolean
        return TypeAdapter(bool).validate_python(raw)
    if kind == "utc_datetime":
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    if kind == "date":
        return date.fromisoformat(str(raw)[:10])
    return raw


def _checked_columns(source) -> list[tuple[Any, Any]]:
    """The columns the check compares: those read, and those set from the body (a constant,
    ``{list.name}``, ``{parent...}``, ``{body...}``), not those set by the run."""
    spec = source.spec
    return [
        (c, spec.field(c.name))
        for c in table_columns(spec.model_dump())
        if template_scopes(spec.field(c.name).value) <= {"list", "parent", "body"}
    ]


def _served_records(source, payload) -> list[Found]:
    """The served records with where each was (the same walk as the source's)."""
    spec = source.spec
    if spec.format == "html":  # the page's readable rows (declared_html.recorded_html)
        return [Found(raw) for raw in payload.records]
    if served_whole(spec):
        return found_records(payload.body, spec.records_spec(), spec.format)
    parent_path = spec.records_spec().path.rpartition(".")[0]
    parent = at_path(payload.body, parent_path) if parent_path else payload.body
    return [Found(raw, parent) for raw in payload.records]


def _wanted(column, how, found: Found, body: Any) -> Any:
    """What a checked column must hold for a served record."""
    item = found.relabelled()
    if how.rules is not None:
        raw = classified(how.rules, item)
    elif how.value is not None:
        context = {"list": found.list_name, "parent": found.parent, "body": body}
        raw = set_value(how.value, context)
    else:
        raw = at_path(item, how.path or column.name)
    epoch = how.format if how.format in ("epoch_s", "epoch_ms") else None
    return served_value(column.type, converted(how, raw), epoch, how.scale)


def check_declared(source):
    """The check of a declared source: stored rows are exactly the served records (and hold the
    values ``expect.rows`` writes out, typed as their columns)."""
    columns = _checked_columns(source)
    key = [c for c, how in columns if c.key]
    expect = source.spec.expect or {}
    expected_count = expect.get("records")
    stamped = {c.name for c in source.table.columns if source.spec.field(c.name).is_set}

    def key_of(values: dict[str, Any]) -> tuple:
        return tuple(str(values[c.name]) for c in key)

    def in_partition(wanted: dict[str, Any], partition: str | None) -> bool:
        if partition is None or source.date_column is None:
            return True
        return str(wanted[source.date_column])[:10] == partition

    def check(crawler, partition) -> None:
        payload = crawler.server.dataset.recorded[source.worker_id]
        stored = {key_of(row): row for row in crawler.rows(source.table)}
        if expected_count is not None:
            assert len(payload.records) == expected_count
        served = [
            (found, wanted)
            for found in _served_records(source, payload)
            if in_partition(
                wanted := {c.name: _wanted(c, h, found, payload.body) for c, h in columns},
                partition,
            )
        ]
        assert served and len(stored) == len(served)
        for found, wanted in served:
            row = stored[key_of(wanted)]
            for column, _how in columns:
                assert row[column.name] == wanted[column.name], (
                    source.worker_id,
                    column.name,
                    found.item,
                )
            read = {(how.path or c.name).split(".")[0] for c, how in columns if not how.is_set}
            unread = set(as_mapping(found.relabelled())) - read - stamped
            assert set(row["extra"] or {}) >= unread, (source.worker_id, unread)
        check_rows(source, list(stored.values()), expect.get("rows") or [])

    return check


def check_rows(source, stored: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    """Each row of ``expect.rows`` (a few columns' values, as the provenance gives them) is
    stored exactly: decimals and times compared typed, never as text."""
    kinds = {c.name: c.type for c in table_columns(source.spec.model_dump())}
    for expected in rows:
        typed = {
            name: served_value(kinds[name], value, None, None) for name, value in expected.items()
        }
        matching = [row for row in stored if all(row[k] == v for k, v in typed.items())]
        assert matching, (source.worker_id, "no stored row holds", typed)


def break_declared(source):
    """Makes the served record `expect.bad_record.index` invalid (`set` its fields)."""
    bad = (source.spec.expect or {}).get("bad_record") or {}

    def bad_record(dataset, _partition) -> None:
        payload = dataset.recorded[source.worker_id]
        if source.spec.format == "html":  # a page: `bad_record: {replace: [old, new]}`
            break_page(payload, bad)
            return
        if source.spec.rows_from_columns:  # the served arrays' element `index`
            payload.body = copy.deepcopy(payload.body)
            for name, value in bad["set"].items():
                at_path(payload.body, source.spec.records_spec().path)[name][bad["index"]] = value
            return
        if served_whole(source.spec):  # the records live inside the body served whole
            payload.body, payload.raw = copy.deepcopy(payload.body), None
            spec = source.spec
            found = found_records(payload.body, spec.records_spec(), spec.format)
            payload.records = [each.item for each in found]
        else:
            payload.records = copy.deepcopy(payload.records)
        record = payload.records[bad["index"]]
        for name, value in bad["set"].items():  # an array record's fields are its indexes
            record[int(name) if isinstance(record, list) else name] = value

    return bad_record


def standard_of(source) -> Standard | None:
    """The Standard of a declared source, or None when it declares no ``expect``."""
    expect = source.spec.expect
    if not expect or not source.spec.replay or "bad_record" not in expect:
        return None
    routes.load_replays()
    path = routes.WORKER_BASE_PATHS[source.worker_id] + source.spec.replayed_path()
    return Standard(
        check=check_declared(source),
        bad_record=break_declared(source),
        bad_payload_path=path,
        rerun=expect.get("rerun", "unchanged"),
        partition=(lambda _dataset: expect["partition"]) if "partition" in expect else None,
        seed=seed_of(source),
    )
