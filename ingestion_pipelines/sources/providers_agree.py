"""`providers_agree` (WARN), the check of every declared source with more than one provider: the
stored rows compared with what the other providers said of the same rows
(`provider_observation`, kept by sources/declared_reconcile.py) on the days both cover, every
difference beyond the column's tolerance named (key, column, each provider's value).

Tolerances (the declaration's `reconcile.columns`): `exact` (volumes), an absolute decimal in the
table's unit (index points: "0.01"), or `price_step`: one price step of the row's board at that
price level (vnmarket/price_steps.py, in VND: `unit` converts the column, e.g. "1000" for prices
in thousands of VND; a row with no known board is judged by HOSE's, the finest steps).

It passes when nothing differs and every other provider could be asked; it fails (a warning,
the run stands) naming the differences and what could not be compared (a provider blocked or
failing, reconciliation off). A raw price is never compared with an adjusted one: a declaration
lists only the columns both providers mean the same way (`not_compared` says which are left out
and why).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import dagster as dg
from sqlalchemy import Engine, select

from ingestion_pipelines.sources.base import Window
from ingestion_pipelines.sources.declared_reconcile import (
    OFF,
    ColumnRule,
    ReconcileSpec,
    reconcile_spec,
    row_key,
)
from ingestion_pipelines.vnmarket.price_steps import PriceStepError, price_step

CHECK_NAME = "providers_agree"
NAMED = 200  # differences named in the metadata (the count is always whole)
FALLBACK_BOARD = "HOSE"  # the finest steps: an unknown board never excuses a difference


def has_providers(source_cls) -> bool:
    """Whether `source_cls` is a declaration with more than one provider."""
    spec = getattr(source_cls, "spec", None)
    return bool(getattr(spec, "providers", None))


def check_specs(source_cls) -> list[dg.AssetCheckSpec]:
    """`providers_agree` for a multi-provider declaration (none for any other source)."""
    if not has_providers(source_cls):
        return []
    return [
        dg.AssetCheckSpec(
            CHECK_NAME,
            asset=source_cls.worker_id,
            description="the providers agree on the days both cover (every difference named)",
        )
    ]


@dataclass(frozen=True)
class Difference:
    """One value two providers give differently, beyond the column's tolerance."""

    key: str
    column: str
    ours: tuple[str, str]  # (provider, value) of the stored row
    theirs: tuple[str, str]
    tolerance: str

    def describe(self) -> str:
        """The key, the column and each provider's value, as the check names it."""
        return (
            f"{describe_key(self.key)} {self.column}: {self.ours[0]} {self.ours[1]} vs "
            f"{self.theirs[0]} {self.theirs[1]} (tolerance {self.tolerance})"
        )


@dataclass
class Comparison:
    """What comparing the stored rows with the observations found."""

    days: set[date] = field(default_factory=set)
    values: int = 0
    differences: list[Difference] = field(default_factory=list)
    providers: set[str] = field(default_factory=set)
    only_observed: int = 0  # observations of rows the table does not hold
    missing_stored: int = 0  # observed values whose stored column is NULL


def compare(source_cls, engine: Engine, window: Window | None) -> Comparison:
    """Compare `source_cls`'s stored rows with its observations (in `window`, when given)."""
    spec = reconcile_spec(source_cls)
    result = Comparison()
    if spec is None:
        return result
    observations = _observations(source_cls, engine, window)
    stored = _stored(source_cls, engine, {o["day"] for o in observations})
    rules = spec.rules()
    primary = source_cls.spec.provider or "primary"
    for seen in observations:
        row = stored.get(seen["row_key"])
        if row is None:
            result.only_observed += 1
            continue
        ours_provider = str(row.get("provider") or primary)  # NULL: stored before providers
        if ours_provider == seen["provider"]:
            continue  # the stored row came from the same provider: nothing to compare
        rule = rules.get(seen["column_name"])
        value = row.get(seen["column_name"])
        if rule is None:
            continue
        if value is None:
            result.missing_stored += 1
            continue
        result.values += 1
        result.providers.update((ours_provider, seen["provider"]))
        if seen["day"] is not None:
            result.days.add(seen["day"])
        ours, theirs = Decimal(str(value)), Decimal(seen["value"])
        allowed = tolerance(rule, ours, theirs, row)
        if abs(ours - theirs) > allowed:
            result.differences.append(
                Difference(
                    seen["row_key"],
                    seen["column_name"],
                    (ours_provider, format(ours.normalize(), "f")),
                    (seen["provider"], seen["value"]),
                    _said(rule, allowed),
                )
            )
    return result


def tolerance(rule: ColumnRule, ours: Decimal, theirs: Decimal, row: dict[str, Any]) -> Decimal:
    """How far two values of a column may be apart (in the table's unit)."""
    if rule.tolerance == "exact":
        return Decimal(0)
    absolute = rule.absolute()
    if absolute is not None:
        return absolute
    unit = Decimal(rule.unit)
    price = min(ours, theirs) * unit
    if price <= 0:
        return Decimal(0)
    try:
        step = price_step(price, str(row.get(rule.exchange_column) or FALLBACK_BOARD))
    except PriceStepError:  # a board without steps (or none known): the finest steps
        step = price_step(price, FALLBACK_BOARD)
    return step / unit


def _said(rule: ColumnRule, allowed: Decimal) -> str:
    if rule.tolerance == "price_step":
        return f"one price step, {format(allowed.normalize(), 'f')}"
    return rule.tolerance


def _observations(source_cls, engine: Engine, window: Window | None) -> list[dict[str, Any]]:
    from ingestion_pipelines.storage.tables import provider_observation as t

    query = select(t.c.row_key, t.c.provider, t.c.column_name, t.c.day, t.c.value).where(
        t.c.worker_id == source_cls.worker_id
    )
    if window is not None:
        query = query.where(t.c.day >= window.start, t.c.day < window.end)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def _stored(source_cls, engine: Engine, days: set[date]) -> dict[str, dict[str, Any]]:
    """The table's rows of `days` (all of them for a source without a date column), by key."""
    table = source_cls.table
    key = list(source_cls.key or (c.name for c in table.primary_key.columns))
    query = select(table)
    column = source_cls.date_column
    if column is not None:
        days = {d for d in days if d is not None}
        if not days:
            return {}
        query = query.where(table.c[column].in_(sorted(days)))
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    return {row_key(r, key): r for r in rows}


def check_result(
    source_cls, instance, engine: Engine, window: Window | None
) -> dg.AssetCheckResult:
    """`providers_agree` for the run of `instance` (its `observed`: what the reconciliation asked)."""
    spec = reconcile_spec(source_cls)
    observed = getattr(instance, "observed", None)
    not_compared = dict(observed.not_compared) if observed is not None else {}
    if observed is None:
        not_compared[OFF] = "the run asked no other provider"
    found = compare(source_cls, engine, window)
    metadata = {
        "days_compared": len(found.days),
        "values_compared": found.values,
        "differences": len(found.differences),
        "providers": sorted(found.providers),
        "named_differences": dg.MetadataValue.json(
            [d.describe() for d in found.differences[:NAMED]]
        ),
        "not_compared": dg.MetadataValue.json(not_compared),
        "columns_not_compared": dg.MetadataValue.json(spec.not_compared if spec else {}),
        "observed_rows_not_stored": found.only_observed,
        "observed_values_stored_null": found.missing_stored,
        **(observed.metadata() if observed is not None else {}),
    }
    failed = {p: why for p, why in not_compared.items() if p != OFF}
    return dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=not found.differences and not failed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=_description(found, not_compared, spec),
    )


def _description(
    found: Comparison, not_compared: dict[str, str], spec: ReconcileSpec | None
) -> str:
    parts = [
        f"{len(found.days)} days, {found.values} values compared between "
        f"{', '.join(sorted(found.providers)) or 'no two providers'}; "
        f"{len(found.differences)} differences"
    ]
    if found.differences:
        shown = "; ".join(d.describe() for d in found.differences[:5])
        more = len(found.differences) - 5
        parts.append(shown + (f"; and {more} more (metadata)" if more > 0 else ""))
    for provider, why in not_compared.items():
        parts.append(f"not compared: {'reconciliation' if provider == OFF else provider}: {why}")
    if spec is not None and spec.not_compared:
        parts.append(
            "columns left out: " + "; ".join(f"{c}: {w}" for c, w in spec.not_compared.items())
        )
    return ". ".join(parts)


def describe_key(key: str) -> str:
    """A row key as `k=v` pairs (for logs)."""
    return ", ".join(f"{k}={v}" for k, v in json.loads(key).items())
