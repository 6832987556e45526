"""The reconciliation of a multi-provider declared source's providers (issue 19 §11): after a run
stored its window from the provider that answered (`sources/declared_providers.py`), the OTHER
providers are asked for the window's last days and what they say is kept beside the table, never
in it (`provider_observation`: worker, row key, provider, column, value as exact decimal text).
The `providers_agree` check (`sources/providers_agree.py`) compares the two on the days both cover.

Declared in the source's defs.yaml::

    settings:
      reconcile_days: {default: 3, ge: 0, description: "... 0: off"}
      reconcile_families: {default: 20, ge: 1, description: "... for_each rows asked per run"}
    reconcile:
      days: 3                  # the default of `reconcile_days` when the settings do not declare it
      families: 20             # the default of `reconcile_families`
      columns:                 # the columns compared and how close two values must be
        adjusted_close: {tolerance: price_step, unit: "1000"}   # one step of the row's board
        volume: exact
        close: "0.01"          # an absolute tolerance, in the table's unit
      not_compared: {open: "Vietcap's bars are adjusted, VNDIRECT's raw"}   # said in the check

Bounded: per run and per other provider, at most `reconcile_families` of the `for_each` rows
(rotating with the window's first day, so every row is reached over the days), each asked for the
last `reconcile_days` trading days of the window (its pages). A provider the health book says is
unusable (blocked, failing, `sources/providers.py`) is not asked; one that fails is asked nothing
more in this run, its failure goes to its health and the check says what could not be compared.
The run's own result never depends on it: the main rows are committed before anything is asked.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from loguru import logger
from pydantic import ValidationError, field_validator

from ingestion_pipelines.core.redaction import redact
from ingestion_pipelines.http_client.errors import RunDeadlineExceeded
from ingestion_pipelines.sources.base import Request, Window
from ingestion_pipelines.sources.declared_spec import Strict
from ingestion_pipelines.vnmarket.calendar import trading_days

OFF = "off"


class ColumnRule(Strict):
    """How close two providers' values of one column must be."""

    tolerance: Literal["exact", "price_step"] | str = "exact"  # or an absolute decimal
    unit: str = "1"  # VND per unit of the table's column (price steps are in VND)
    exchange_column: str = "exchange"  # the row's board, for price steps

    @field_validator("tolerance")
    @classmethod
    def _known(cls, value: str) -> str:
        if value in ("exact", "price_step"):
            return value
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite() or number < 0:
            raise ValueError(f"tolerance {value!r}: exact, price_step or a decimal >= 0")
        return value

    def absolute(self) -> Decimal | None:
        """The absolute tolerance, when one is declared."""
        if self.tolerance in ("exact", "price_step"):
            return None
        return Decimal(self.tolerance)


class ReconcileSpec(Strict):
    """A declaration's `reconcile:` block."""

    days: int = 3
    families: int = 20
    columns: dict[str, str | ColumnRule]
    not_compared: dict[str, str] = {}  # column -> why it is left out (said in the check)

    def rules(self) -> dict[str, ColumnRule]:
        """Every compared column's rule (a bare string is its tolerance)."""
        return {
            c: r if isinstance(r, ColumnRule) else ColumnRule(tolerance=r)
            for c, r in self.columns.items()
        }


def reconcile_spec(source_cls) -> ReconcileSpec | None:
    """The source's `reconcile:` block, read (None: it declares none)."""
    declared = getattr(getattr(source_cls, "spec", None), "reconcile", None)
    return None if declared is None else ReconcileSpec.model_validate(declared)


@dataclass
class Observed:
    """What one run's reconciliation asked and kept, for the check."""

    days: tuple[date, date] | None = None  # the days asked (first, last)
    requests: dict[str, int] = field(default_factory=dict)  # per provider
    observations: dict[str, int] = field(default_factory=dict)  # values kept, per provider
    not_compared: dict[str, str] = field(default_factory=dict)  # provider (or "off") -> why

    def metadata(self) -> dict[str, Any]:
        """For the run's log and the check's metadata."""
        asked = {"reconcile_days": f"{self.days[0]}..{self.days[1]}"} if self.days else {}
        return {
            **asked,
            "reconcile_requests": dict(self.requests),
            "observations_kept": dict(self.observations),
        }


def row_key(row: dict[str, Any], key: list[str]) -> str:
    """A row's key columns as sorted JSON text (the same for a stored row and an observation)."""
    return json.dumps({k: _text(row.get(k)) for k in key}, sort_keys=True, separators=(",", ":"))


def decimal_text(value: Any) -> str | None:
    """`value` as exact decimal text (None: not a number)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    return format(number.normalize(), "f")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def tail_window(window: Window | None, days: int) -> Window | None:
    """The window's last `days` trading days (the whole window when it has fewer)."""
    if window is None:
        return None
    trading = list(trading_days(window.start, window.end))[-days:]
    start = trading[0] if trading else window.start
    return Window(start, window.end, window.timezone)


def _setting(source, name: str, default: int) -> int:
    value = getattr(source.settings, name, None)
    return default if value is None else int(value)


def observe(source, session, engine) -> Observed:
    """Ask `source`'s other providers for the last days of its run and keep what they say in
    `provider_observation` (`source`: a `ProvidersSource` after its crawl)."""
    spec = reconcile_spec(type(source))
    observed = Observed()
    days = 0 if spec is None else _setting(source, "reconcile_days", spec.days)
    if spec is None or days <= 0:
        why = "no `reconcile:` block" if spec is None else "reconcile_days is 0"
        observed.not_compared[OFF] = why
        return observed
    window = tail_window(source.window, days)
    if window is not None:
        observed.days = (window.start, window.last_day)
    partitions = _partitions(source)
    for provider in source.failover.order:
        # a provider the run asked already for a partition (it failed, or backed a stale one)
        # is not asked again for it
        families = [f for f, p in partitions.items() if p.served_by and provider not in p.tried]
        failed = [  # a stale answer is not a failure: the provider was asked
            p.failures[provider]
            for p in partitions.values()
            if not p.failures.get(provider, "stale").startswith("stale")
        ]
        if failed and provider not in (p.served_by for p in partitions.values()):
            observed.not_compared[provider] = f"failed in the run: {failed[0]}"
        chosen = _rotated(families, window, _setting(source, "reconcile_families", spec.families))
        if not chosen:
            continue
        book = source.failover.book
        if not book.usable(provider, datetime.now(UTC)):
            observed.not_compared[provider] = f"not asked: {book.why_unusable(provider)}"
            continue
        _ask(source, session, provider, window, set(chosen), (spec, engine), observed)
    return observed


def _partitions(source) -> dict[str, Any]:
    """The run's partitions (`Failover`'s states) by family (`for_each` row; the worker id
    without one): a partition's label is its window, then its family (`ProvidersSource.label`)."""
    return {
        label.split(" ", 1)[1] if " " in label else source.worker_id: state
        for label, state in source.failover.partitions.items()
    }


def _rotated(families: list[str], window: Window | None, cap: int) -> list[str]:
    """At most `cap` families, starting `cap` further each day (every family is reached in
    len / cap days)."""
    ordered = sorted(families)
    if len(ordered) <= cap:
        return ordered
    offset = ((window.start.toordinal() if window else 0) * cap) % len(ordered)
    return (ordered[offset:] + ordered[:offset])[:cap]


def _ask(source, session, provider, window, families, into, observed: Observed) -> None:
    """Ask `provider` for `families` over `window`; keep what it says (`into`: the spec and the
    data engine)."""
    part = type(source).parts()[provider](source.settings, window)
    part.started_at = source.started_at
    base = part.base_url or source.settings.base_url
    queue = deque(r for r in part.build_requests() if r.meta.get("family") in families)
    rows: list[dict[str, Any]] = []
    try:
        while queue:
            request = queue.popleft()
            observed.requests[provider] = observed.requests.get(provider, 0) + 1
            # never conditional: a 304 would carry nothing to compare
            response = request.send(session, base, part.headers, conditional=False)
            for item in part.parse(response, request):
                if isinstance(item, Request):
                    queue.append(item)
                elif isinstance(item, dict):
                    rows.extend(_readable(part, item, window))
    except Exception as exc:  # noqa: BLE001 - the run succeeded: the check says what failed
        cause = redact(f"{type(exc).__name__}: {exc}")[:300]
        observed.not_compared[provider] = f"failed: {cause}"
        if not isinstance(exc, RunDeadlineExceeded):  # the run's time, not the provider's
            source.failover.book.record_failure(provider, exc, datetime.now(UTC))
        logger.bind(worker_id=source.worker_id).warning(
            "reconciliation: {} could not be asked: {}", provider, cause
        )
        return
    if not observed.requests.get(provider):
        return  # none of the chosen rows is one of this provider's requests
    days = [_day(r.get(source.date_column)) for r in rows] if source.date_column else []
    newest = max((d for d in days if d is not None), default=None)
    source.failover.book.record_success(provider, datetime.now(UTC), newest)
    kept = _store(source, provider, rows, *into)
    observed.observations[provider] = observed.observations.get(provider, 0) + kept


def _readable(part, item: dict, window: Window | None) -> list[dict[str, Any]]:
    """The record's row when it is valid and in the window (a rejected record is not compared:
    the provider's own run would dead-letter it)."""
    try:
        row = part.record.model_validate(item).row()
    except ValidationError:
        return []
    day = _day(row.get(part.date_column)) if part.date_column else None
    if window is not None and day is not None and not window.contains(day):
        return []
    return [row]


def _day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else None


def _store(source, provider: str, rows: list[dict], spec: ReconcileSpec, engine) -> int:
    """Upsert the observed values (one per row and compared column); how many."""
    from ingestion_pipelines.storage.tables import provider_observation
    from ingestion_pipelines.storage.upsert import upsert

    key = list(source.key or (c.name for c in source.table.primary_key.columns))
    now = datetime.now(UTC)
    values = []
    for row in rows:
        day = _day(row.get(source.date_column)) if source.date_column else None
        for column in spec.columns:
            text = decimal_text(row.get(column))
            if text is None:
                continue
            values.append(
                {
                    "worker_id": source.worker_id,
                    "row_key": row_key(row, key),
                    "provider": provider,
                    "column_name": column,
                    "day": day,
                    "value": text,
                    "fetched_at": now,
                }
            )
    if values:
        upsert(engine, provider_observation, values)
    return len(values)
