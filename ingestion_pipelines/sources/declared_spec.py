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

from ingestion_pipelines.core.timezones import ICT_NAME
from ingestion_pipelines.sources.declared_html import HtmlBody
from ingestion_pipelines.sources.declared_units import UNITS
from ingestion_pipelines.sources.paginators import PaginatorSpec

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
    """One request per distinct row of `table` (its `columns`, as ``{row.<column>}``), or per item
    of the list setting `settings` (each a mapping, its keys as ``{row.<key>}``); with
    `within: [from_column, to_column]`, only the rows whose span meets the run's window (a stock
    listed before the window's last day and not delisted before its start; an empty end is open)."""

    table: str | None = None
    columns: list[str] = []
    settings: str | None = None  # see sources.declared_each
    within: tuple[str, str] | None = None
    only: str | None = None  # a setting listing a subset of the table's rows (declared_subset)
    where: dict[str, str] = {}  # fixed column values the rows must have (declared_subset)

    @model_validator(mode="after")
    def _one_origin(self) -> ForEach:
        if (self.table is None) == (self.settings is None):
            raise ValueError("for_each takes either `table` (with `columns`) or `settings`")
        if self.table is not None and not self.columns:
            raise ValueError("for_each over a table needs `columns`")
        if (self.only is not None or self.where) and self.table is None:
            raise ValueError(
                "for_each: `only`/`where` narrow a table's rows (the settings form is a list)"
            )
        return self


class RequestSpec(Strict):
    """The first request of a run (before pagination), its parts templated."""

    path: str
    method: Literal["GET", "POST"] = "GET"
    query: dict[str, Any] = {}
    body: dict[str, Any] | None = None  # a JSON body (POST), its string values templated
    headers: dict[str, str] = {}
    conditional: bool = False
    for_each: ForEach | None = None


class DeadlineSpec(Strict):
    """When a trading day's data is final: `at` (HH:MM, ICT) on the trading day
    `trading_days_after` it (vnmarket.calendar.Deadline; read by `declared_deadlines`)."""

    at: str
    trading_days_after: int = 0
    why: str


class PartitionSpec(Strict):
    """Daily partitions, or one per trading day of the market calendar; `date_column` is the
    table's column the window filters on."""

    kind: Literal["daily", "trading_days"]
    start: str
    timezone: str = ICT_NAME
    date_column: str
    window_filter: bool = False  # drop records outside the window before validation
    deadline: DeadlineSpec | None = None  # when a day's data is final (the calendar's rules)


class RuleSpec(Strict):
    """One rule of a classified column: `then` when every path's value (as text) matches its
    regular expression (searched; an absent value never matches); no `when`: the fallback."""

    when: dict[str, str] = {}
    then: str


class FieldSpec(Strict):
    """How one column is read: its JSON path, format, scale and bounds (`value`, `map`, `unit`:
    sources/declared_values.py)."""

    path: str | None = None  # dotted; default: the column's name
    value: str | None = None  # not read: "run_started_at", a constant or a template
    rules: list[RuleSpec] | None = None  # not read: classified from the record, first rule wins
    map: dict[str, str] | None = None  # the sent value -> the stored one (others unchanged)
    unit: str | None = None  # a converter of vnmarket.units (declared_values.UNITS)
    format: Literal["epoch_s", "epoch_ms", "yyyymmdd"] | None = None
    scale: Decimal | None = None  # the stored value is the sent one times `scale`
    gt: Decimal | None = None
    ge: Decimal | None = None
    lt: Decimal | None = None
    le: Decimal | None = None
    pattern: str | None = None
    min_length: int | None = None
    choices: list[str] | None = None
    # this provider must send it, though the column may be NULL (another provider's rows)
    required: bool = False

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str | None) -> str | None:
        if value is not None and value not in UNITS:
            raise ValueError(f"unknown unit {value!r} (one of {sorted(UNITS)})")
        return value

    @property
    def is_set(self) -> bool:
        """Whether the column is set (`value`, `rules`) rather than read from a path."""
        return self.value is not None or self.rules is not None


class ListSpec(Strict):
    """One named record list: its `path`, and the `fields` its records name their own way
    (column -> path in this list's records, e.g. ``{name: stockCode}``)."""

    path: str
    fields: dict[str, str] = {}


class RecordsSpec(Strict):
    """Where a body's records are, when not one list at a dotted path (``records: data``):
    `path` may walk every element of a list with ``*`` (``ratelist.city.*.item``); `one: true`
    takes the object there as one record (a single-object body); `lists` names several record
    lists of one body (``{stock: data.topHoldings, industry: {path: data.industries, fields:
    {name: industry}}}``; an absent list holds no records), the name of a record's list being
    ``{list.name}`` in a `value:` template. `missing: dead_letter` (with `one`): a `for_each`
    item answered without its record is a dead letter, not a failed run (declared_missing.py)."""

    path: str = ""
    one: bool = False
    lists: dict[str, str | ListSpec] = {}
    missing: Literal["fail", "dead_letter"] = "fail"

    @model_validator(mode="after")
    def _one_way(self) -> RecordsSpec:
        if self.lists and (self.path or self.one):
            raise ValueError("records: `lists` or `path`/`one`, not both")
        if self.missing == "dead_letter" and not self.one:
            raise ValueError("records: `missing: dead_letter` needs `one: true`")
        return self


class SettingSpec(Strict):
    """A setting of the worker (beyond ScheduledSettings): default, bounds, secrecy."""

    default: Any = None
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    pattern: str | None = None  # a text setting's form (searched, as pydantic does)
    min_length: int | None = None
    max_length: int | None = None
    secret: bool = False
    description: str | None = None


class RestSourceSpec(Strict):
    """The declaration of a REST JSON source: the attributes of its defs.yaml."""

    worker_id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    group: str = "crawl"
    description: str = ""
    fresh_within: str = "26h"
    business_hours: dict[str, Any] | None = None  # calendar-aware freshness (business_freshness)
    settings: dict[str, Any] = {}
    headers: dict[str, str] = {}
    hook: str | None = Field(None, pattern=r"^[\w.]+:\w+$")  # module:Class (declared_hooks)
    request: RequestSpec | None = None  # required unless a hook makes the requests
    paginator: dict[str, Any] = {}
    # how the body is decoded: json and xml by declared_body.py, html by declared_html.py
    format: Literal["json", "xml", "html"] = "json"
    html: HtmlBody | None = None  # format html: how rows become records (sources/declared_html.py)
    fetch: Literal["http", "browser"] = "http"  # browser: pages rendered in Chromium (html only)
    records: str | RecordsSpec = ""
    require: dict[str, str] = {}  # dotted path -> the value the body must hold there
    rows_from_columns: dict[str, Any] | None = None  # see sources.declared_columns
    error: str | None = None  # dotted path: a non-empty value there fails the run
    totals: str | None = None
    partitions: PartitionSpec | None = None
    table: dict[str, Any]
    key: list[str] | None = None
    fields: dict[str, str | FieldSpec] = {}
    ordered: list[list[str]] = []  # column chains each record keeps non-decreasing
    # an unpartitioned full crawl checkpointed per request, resumed after a crash (Source.resumable)
    resumable: bool = False
    history: str | None = None  # the table keeping the values updates replace (storage.upsert)
    provider: str | None = None  # this declaration's provider, when `providers` adds others
    providers: dict[str, Any] = {}  # more providers, one table (sources/declared_providers.py)
    reconcile: dict[str, Any] | None = None  # the providers compared (declared_reconcile.py)
    replay: dict[str, Any] | None = None  # read by sources/declared_replay.py
    expect: dict[str, Any] | None = None  # read by sources/declared_testing.py

    @model_validator(mode="after")
    def _request_or_hook(self) -> RestSourceSpec:
        if self.request is None and self.hook is None:
            raise ValueError("`request` is required (unless a `hook` makes the requests)")
        return self

    @field_validator("business_hours")
    @classmethod
    def _business_hours(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        from ingestion_pipelines.vnmarket.business_hours import BusinessHours

        if value is not None:
            BusinessHours.of(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _provider_column(cls, data: Any) -> Any:
        """With `providers`, a table's `provider` column names this declaration's provider on
        its rows (sources/declared_providers.py stamps the others' rows alike)."""
        if not (isinstance(data, dict) and data.get("providers")):
            return data
        columns = (data.get("table") or {}).get("columns") or {}
        fields = data.get("fields") or {}
        if "provider" in columns and "provider" not in fields:
            stamp = {"value": data.get("provider") or "primary"}
            data = {**data, "fields": {**fields, "provider": stamp}}
        return data

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

    @model_validator(mode="after")
    def _body_format(self) -> RestSourceSpec:
        if (self.format == "html") != (self.html is not None):
            raise ValueError("`format: html` and an `html` block go together")
        if self.fetch == "browser" and self.format != "html":
            raise ValueError("`fetch: browser` renders HTML pages: it needs `format: html`")
        return self

    def records_spec(self) -> RecordsSpec:
        """Where the records are (a bare string is their list's path)."""
        if isinstance(self.records, str):
            return RecordsSpec(path=self.records)
        return self.records

    def replayed_path(self) -> str:
        """The real path the recording answers at: the request's, or ``replay.path`` where the
        request's path is a template (``/res/products/{settings.fund_id}`` recorded for one)."""
        return (self.replay or {}).get("path") or self.request.path

    def field(self, column: str) -> FieldSpec:
        """How `column` is read (a bare string is its path)."""
        declared = self.fields.get(column)
        if isinstance(declared, str):
            return FieldSpec(path=declared)
        return declared or FieldSpec()
