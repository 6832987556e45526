"""The pydantic models a declaration becomes: its record (one field per declared column, with
its path, format, scale and bounds) and its settings (ScheduledSettings plus the declared ones)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasPath,
    BeforeValidator,
    Field,
    create_model,
)
from pydantic.fields import FieldInfo

from ingestion_pipelines.config.workers import ScheduledSettings, secret
from ingestion_pipelines.sources.base import (
    EpochMillis,
    EpochSeconds,
    Exact,
    NonNegativeExact,
    PositiveExact,
    Record,
    UtcTime,
)
from ingestion_pipelines.sources.declared_defaults import key_bounds
from ingestion_pipelines.sources.declared_rules import ordered_validators
from ingestion_pipelines.sources.declared_spec import FieldSpec, RestSourceSpec, SettingSpec
from ingestion_pipelines.sources.declared_values import with_conversions
from ingestion_pipelines.storage.declared import table_columns

_PYTHON_TYPES: dict[str, Any] = {
    "string": str,
    "text": str,
    "long_text": str,
    "integer": int,
    "bigint": int,
    "boolean": bool,
    "decimal": Exact,
    "date": date,
    "utc_datetime": UtcTime,
    "json": Any,
}


def _utc_date(value: Any) -> Any:
    """Epoch seconds (a number or digits) as their UTC calendar date, whatever the time of day;
    other input unchanged, for the validator to reject."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(int(value), UTC).date()
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"timestamp {value} is out of range") from None
    return value


EpochSecondsDate = Annotated[date, BeforeValidator(_utc_date)]


def _field_type(column, spec: FieldSpec) -> Any:
    if column.type == "decimal" and spec.scale is None:
        # The domain's own checks, with their reasons ("must not be negative"), for the usual bounds.
        if spec.ge == 0 and spec.gt is None:
            return NonNegativeExact
        if spec.gt == 0 and spec.ge is None:
            return PositiveExact
    if spec.choices:
        return Literal[tuple(spec.choices)]
    if spec.format == "epoch_s":
        return EpochSecondsDate if column.type == "date" else EpochSeconds
    if spec.format == "epoch_ms":
        return EpochMillis
    kind = _PYTHON_TYPES[column.type]
    if spec.scale is not None:
        scale = spec.scale
        return Annotated[kind, AfterValidator(lambda v: v * scale)]
    return kind


def record_model(spec: RestSourceSpec, name: str) -> type[Record]:
    """The record model of a declaration: one field per declared column."""
    fields: dict[str, Any] = {}
    for column in table_columns(spec.model_dump()):
        how = spec.field(column.name)
        kind = _field_type(column, how)
        required = column.key or column.required or how.required
        path = (how.path or column.name).split(".")
        bounds = {
            k: v
            for k, v in how.model_dump(
                include={"gt", "ge", "lt", "le", "pattern", "min_length"}
            ).items()
            if v is not None
            and not (kind in (NonNegativeExact, PositiveExact) and k in ("ge", "gt"))
        }
        bounds |= key_bounds(column, bounds)  # sources/declared_defaults.py
        alias = None if how.is_set else (path[0] if len(path) == 1 else AliasPath(*path))
        field = Field(... if required else None, validation_alias=alias, **bounds)
        annotation = with_conversions(kind if required else kind | None, how)
        fields[column.name] = (annotation, field)
    unknown = {c for chain in spec.ordered for c in chain} - set(fields)
    if unknown:
        raise ValueError(f"{spec.worker_id}: ordered names unknown columns {sorted(unknown)}")
    return create_model(
        name,
        __base__=Record,
        __doc__=f"One record of {spec.worker_id}.",
        __validators__=ordered_validators(spec.ordered),
        **fields,
    )


def _setting_type(default: Any) -> Any:
    """A declared setting's type, from its default: a list of texts is ``list[str]`` (so an
    environment value may list them comma-separated), no default is optional text."""
    if default is None:
        return str | None
    if isinstance(default, list) and all(isinstance(item, str) for item in default):
        return list[str]
    if isinstance(default, list) and all(isinstance(item, dict) for item in default):
        return list[dict[str, Any]]
    return type(default)


def settings_model(spec: RestSourceSpec, name: str) -> type[ScheduledSettings]:
    """The worker's settings: ScheduledSettings plus what the declaration adds or defaults."""
    fields: dict[str, Any] = {}
    inherited = ScheduledSettings.model_fields
    for key, declared in spec.settings.items():
        setting = declared if isinstance(declared, SettingSpec) else None
        if setting is None:
            setting = (
                SettingSpec.model_validate(declared)
                if isinstance(declared, dict)
                else SettingSpec(default=declared)
            )
        bounds = setting.model_dump(
            include={"ge", "le", "gt", "pattern", "min_length", "max_length"}, exclude_none=True
        )
        if key in inherited:  # its own bounds kept (concurrency 1..64), the declared ones added
            said = {"description": setting.description} if setting.description else {}
            declared_field = Field(setting.default, **bounds, **said)
            merged = FieldInfo.merge_field_infos(inherited[key], declared_field)
            fields[key] = (inherited[key].annotation, merged)
            continue
        kind = _setting_type(setting.default)
        if setting.secret:
            fields[key] = (kind | None, secret(setting.default, description=setting.description))
        else:
            fields[key] = (kind, Field(setting.default, description=setting.description, **bounds))
    return create_model(name, __base__=ScheduledSettings, **fields)
