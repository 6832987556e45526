"""The declaration of a YAML source (the ``attributes`` of its defs.yaml), as pydantic models:
what `sources.declared` turns into a `Source` subclass. See `sources.declared` for an example."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from ingestion_pipelines.sources.paginators import PaginatorSpec
from ingestion_pipelines.timezones import ICT_NAME

_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def duration(text: str | int) -> timedelta:
    """``"20m"``, ``"26h"``, ``"2d"`` (or seconds) as a timedelta."""
    if isinstance(text, int):
        return timedelta(seconds=text)
    match = _DURATION.match(str(text).strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (e.g. 20m, 26h, 2d)")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


class Strict(BaseModel):
    """A declaration part: unknown keys refused, frozen once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ForEach(Strict):
    """One request per distinct row of `table` (its `columns`, as ``{row.<column>}``); with
    `within: [from_column, to_column]`, only the rows whose span meets the run's window (a stock
    listed before the window's last day and not delisted before its start; an empty end is open)."""

    table: str
    columns: list[str]
    within: tuple[str, str] | None = None


class RequestSpec(Strict):
    """The first request of a run (before pagination), its parts templated."""

    path: str
    method: Literal["GET", "POST"] = "GET"
    query: dict[str, Any] = {}
    body: dict[str, Any] | None = None  # a JSON body (POST), its string values templated
    headers: dict[str, str] = {}
    conditional: bool = False
    for_each: ForEach | None = None


class PartitionSpec(Strict):
    """Daily partitions, or one per trading day of the market calendar; `date_column` is the
    table's column the window filters on."""

    kind: Literal["daily", "trading_days"]
    start: str
    timezone: str = ICT_NAME
    date_column: str


class FieldSpec(Strict):
    """How one column is read: its JSON path, format, scale and bounds."""

    path: str | None = None  # dotted; default: the column's name
    value: Literal["run_started_at"] | None = None  # not read: set by the run
    format: Literal["epoch_s", "epoch_ms"] | None = None
    scale: Decimal | None = None  # the stored value is the sent one times `scale`
    gt: Decimal | None = None
    ge: Decimal | None = None
    lt: Decimal | None = None
    le: Decimal | None = None
    pattern: str | None = None
    min_length: int | None = None
    choices: list[str] | None = None


class SettingSpec(Strict):
    """A setting of the worker (beyond ScheduledSettings): default, bounds, secrecy."""

    default: Any = None
    ge: float | None = None
    le: float | None = None
    secret: bool = False
    description: str | None = None


class RestSourceSpec(Strict):
    """The declaration of a REST JSON source: the attributes of its defs.yaml."""

    worker_id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    group: str = "crawl"
    description: str = ""
    fresh_within: str = "26h"
    settings: dict[str, Any] = {}
    headers: dict[str, str] = {}
    hook: str | None = Field(None, pattern=r"^[\w.]+:\w+$")  # module:Class (declared_hooks)
    request: RequestSpec | None = None  # required unless a hook makes the requests
    paginator: dict[str, Any] = {}
    records: str = ""
    error: str | None = None  # dotted path: a non-empty value there fails the run
    totals: str | None = None
    partitions: PartitionSpec | None = None
    table: dict[str, Any]
    key: list[str] | None = None
    fields: dict[str, str | FieldSpec] = {}
    ordered: list[list[str]] = []  # column chains each record keeps non-decreasing
    replay: dict[str, Any] | None = None  # read by sources/declared_replay.py
    expect: dict[str, Any] | None = None  # read by sources/declared_testing.py

    @model_validator(mode="after")
    def _request_or_hook(self) -> RestSourceSpec:
        if self.request is None and self.hook is None:
            raise ValueError("`request` is required (unless a `hook` makes the requests)")
        return self

    @field_validator("fresh_within")
    @classmethod
    def _duration(cls, value: str) -> str:
        duration(value)
        return value

    @field_validator("paginator")
    @classmethod
    def _paginator(cls, value: dict[str, Any]) -> dict[str, Any]:
        PaginatorSpec.of(value)
        return value

    def field(self, column: str) -> FieldSpec:
        """How `column` is read (a bare string is its path)."""
        declared = self.fields.get(column)
        if isinstance(declared, str):
            return FieldSpec(path=declared)
        return declared or FieldSpec()
