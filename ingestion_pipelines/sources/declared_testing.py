"""The standard tests' expected values of a source declared in YAML, derived from its declaration.

``expect`` in its defs.yaml::

    expect:
      records: 295                              # the recorded payload holds this many records
      rerun: snapshot                           # unchanged (default) | not_modified | snapshot
      bad_record: {index: 3, set: {current_price: -1}}   # makes one served record invalid
      partition: "2019-02-26"                   # a partitioned source: the day its recording holds
      seed: {stock: [{symbol: ABB, ...}]}       # rows its for_each table holds before it runs
      seed: {worker: vn_stocks}                 # ... or the worker filling it, run first

The check compares every stored row with the record served for it, column by column, from the raw
JSON (not through the record model): decimals exactly, times and dates as the source wrote them;
the fields no column reads are in ``extra``. A partitioned source's check compares the served
records of the partition's day only (the others are out of the run's window).
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ingestion_pipelines.replay import routes
from ingestion_pipelines.sources.declared_seed import seed_of
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
    if kind == "utc_datetime":
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    if kind == "date":
        return date.fromisoformat(str(raw)[:10])
    return raw


def _read_columns(source) -> list[tuple[Any, Any]]:
    spec = source.spec
    columns = table_columns(spec.model_dump())
    return [(c, spec.field(c.name)) for c in columns if not spec.field(c.name).value]


def check_declared(source):
    """The check of a declared source: stored rows are exactly the served records."""
    columns = _read_columns(source)
    key = [c for c, how in columns if c.key]
    expected_count = (source.spec.expect or {}).get("records")

    def key_of(values: dict[str, Any]) -> tuple:
        return tuple(str(values[c.name]) for c in key)

    def values_of(raw: Any) -> dict[str, Any]:
        """What each read column must hold for a served record."""
        return {
            c.name: served_value(c.type, at_path(raw, how.path or c.name), how.format, how.scale)
            for c, how in columns
        }

    def in_partition(raw: Any, partition: str | None) -> bool:
        if partition is None or source.date_column is None:
            return True
        return str(values_of(raw)[source.date_column])[:10] == partition

    def check(crawler, partition) -> None:
        recorded = crawler.server.dataset.recorded[source.worker_id].records
        stored = {key_of(row): row for row in crawler.rows(source.table)}
        if expected_count is not None:
            assert len(recorded) == expected_count
        served = [raw for raw in recorded if in_partition(raw, partition)]
        assert served and len(stored) == len(served)
        for raw in served:
            wanted = values_of(raw)
            row = stored[key_of(wanted)]
            for column, _how in columns:
                assert row[column.name] == wanted[column.name], (source.worker_id, column.name, raw)
            read = {(how.path or c.name).split(".")[0] for c, how in columns}
            stamped = {c.name for c in source.table.columns if source.spec.field(c.name).value}
            unread = set(raw) - read - stamped
            assert set(row["extra"] or {}) >= unread, (source.worker_id, unread)

    return check


def break_declared(source):
    """Makes the served record `expect.bad_record.index` invalid (`set` its fields)."""
    bad = (source.spec.expect or {}).get("bad_record") or {}

    def bad_record(dataset, _partition) -> None:
        payload = dataset.recorded[source.worker_id]
        payload.records = copy.deepcopy(payload.records)
        payload.records[bad["index"]].update(bad["set"])

    return bad_record


def standard_of(source) -> Standard | None:
    """The Standard of a declared source, or None when it declares no ``expect``."""
    expect = source.spec.expect
    if not expect or not source.spec.replay or "bad_record" not in expect:
        return None
    routes.load_replays()
    path = routes.WORKER_BASE_PATHS[source.worker_id] + source.spec.request.path
    return Standard(
        check=check_declared(source),
        bad_record=break_declared(source),
        bad_payload_path=path,
        rerun=expect.get("rerun", "unchanged"),
        partition=(lambda _dataset: expect["partition"]) if "partition" in expect else None,
        seed=seed_of(source),
    )
