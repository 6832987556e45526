"""Sources declared in YAML (``ingestion_pipelines/defs/<worker_id>/defs.yaml``), run by the same
engine as the Python ones: the declaration becomes a `Source` subclass (its `Settings`, its
`Record` model and its table), so exact decimals, dead letters, the reject threshold,
conditional GETs, checkpoints, rate limits, redaction and the URL policy hold unchanged.

The declaration (``attributes`` of a ``ingestion_pipelines.components.RestSource``)::

    worker_id: coingecko_markets
    settings: {base_url: https://api.coingecko.com/api/v3, cron: "*/5 * * * *", per_page: 250}
    request: {path: /coins/markets, query: {per_page: "{settings.per_page}"}}
    paginator: {kind: page_number, param: page}
    records: ""                       # dotted path of the record list ("": the body)
    totals: totalElements             # the source's own count (the `complete` check); optional
    table: {name: ..., columns: {coin_id: string(128) key, price_usd: decimal}}
    fields: {coin_id: id, price_usd: {path: current_price, ge: 0}}   # column -> JSON path

Templates (``{settings.<key>}``, ``{window.start}``, ``{window.last_day}``, ``{window.end}``,
``{row.<column>}``) are rendered per request; a query or header that renders to nothing is not
sent. `request.for_each` sends the request once per row of another table. Nothing here imports
Dagster: the catalogue and the replay read the declarations too.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AliasPath,
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
)
from sqlalchemy import select

from ingestion_pipelines.sources.base import (
    DailyPartitions,
    EpochMillis,
    EpochSeconds,
    Exact,
    Expected,
    NonNegativeExact,
    PositiveExact,
    Record,
    Request,
    Source,
    SourceError,
    TradingDayPartitions,
    UtcTime,
    exact_json,
)
from ingestion_pipelines.sources.paginators import PaginatorSpec, at_path
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.declared import Declaration, declarations, table_columns
from ingestion_pipelines.timezones import ICT_NAME
from ingestion_pipelines.workers import ScheduledSettings, catalogue, secret

_PLACEHOLDER = re.compile(r"\{(settings|window|row)\.([A-Za-z_][A-Za-z0-9_]*)\}")
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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ForEach(_Strict):
    """One request per distinct row of `table` (its `columns`, as ``{row.<column>}``)."""

    table: str
    columns: list[str]


class RequestSpec(_Strict):
    """The first request of a run (before pagination), its parts templated."""

    path: str
    method: Literal["GET", "POST"] = "GET"
    query: dict[str, Any] = {}
    headers: dict[str, str] = {}
    conditional: bool = False
    for_each: ForEach | None = None


class PartitionSpec(_Strict):
    """Daily partitions, or one per trading day of the market calendar; `date_column` is the
    table's column the window filters on."""

    kind: Literal["daily", "trading_days"]
    start: str
    timezone: str = ICT_NAME
    date_column: str


class FieldSpec(_Strict):
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


class SettingSpec(_Strict):
    """A setting of the worker (beyond ScheduledSettings): default, bounds, secrecy."""

    default: Any = None
    ge: float | None = None
    le: float | None = None
    secret: bool = False
    description: str | None = None


class RestSourceSpec(_Strict):
    """The declaration of a REST JSON source: the attributes of its defs.yaml."""

    worker_id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    group: str = "crawl"
    description: str = ""
    fresh_within: str = "26h"
    settings: dict[str, Any] = {}
    headers: dict[str, str] = {}
    request: RequestSpec
    paginator: dict[str, Any] = {}
    records: str = ""
    error: str | None = None  # dotted path: a non-empty value there fails the run
    totals: str | None = None
    partitions: PartitionSpec | None = None
    table: dict[str, Any]
    key: list[str] | None = None
    fields: dict[str, str | FieldSpec] = {}
    replay: dict[str, Any] | None = None  # read by sources/declared_replay.py
    expect: dict[str, Any] | None = None  # read by sources/declared_testing.py

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


# ---- rendering -------------------------------------------------------------------------------


def render(value: Any, context: dict[str, Any]) -> Any:
    """A template rendered: a string that is one placeholder gives its value as is (None stays
    None), placeholders inside text are formatted; other values are returned unchanged."""
    if not isinstance(value, str) or "{" not in value:
        return value
    whole = _PLACEHOLDER.fullmatch(value)
    if whole:
        return _lookup(context, whole[1], whole[2])
    return _PLACEHOLDER.sub(lambda m: str(_lookup(context, m[1], m[2])), value)


def _lookup(context: dict[str, Any], scope: str, name: str) -> Any:
    holder = context.get(scope)
    if holder is None:
        raise SourceError(f"template {{{scope}.{name}}}: no {scope} here")
    value = holder.get(name) if isinstance(holder, dict) else getattr(holder, name)
    return value.isoformat() if isinstance(value, date) else value


def _window_context(window) -> dict[str, Any] | None:
    if window is None:
        return None
    return {"start": window.start, "end": window.end, "last_day": window.last_day}


# ---- the Source subclass -----------------------------------------------------------------


class DeclaredSource(Source):
    """A source run from its declaration (`spec`); subclasses are made by `source_class`."""

    spec: ClassVar[RestSourceSpec]
    folder: ClassVar[Any]

    def __init__(self, settings, window=None):
        super().__init__(settings, window)
        self.started_at = datetime.now(UTC)
        context = {"settings": settings, "window": _window_context(window)}
        paginator = PaginatorSpec.of(self.spec.paginator)
        rendered = {k: render(v, context) for k, v in paginator.arguments.items()}
        self.paginator = paginator.build(**rendered)
        # str(): orjson refuses str subclasses (SQLAlchemy's quoted_name) as keys of a dead letter
        self.stamped = [str(c.name) for c in self.table.columns if self.spec.field(c.name).value]

    def rows_for_each(self) -> list[dict[str, Any] | None]:
        """The rows of the `for_each` table (one request each), or [None] when there is none."""
        for_each = self.spec.request.for_each
        if for_each is None:
            return [None]
        from ingestion_pipelines.settings import get_settings
        from ingestion_pipelines.storage.engines import get_engine

        table = tables.metadata.tables[for_each.table]
        columns = [table.c[c] for c in for_each.columns]
        url = self.settings.database_url or get_settings().database_url
        with get_engine(url).connect() as conn:
            rows = conn.execute(select(*columns).distinct().order_by(*columns)).mappings()
            return [dict(r) for r in rows]

    def build_requests(self):
        """The declared request, once (or once per `for_each` row), started by the paginator."""
        spec = self.spec.request
        for row in self.rows_for_each():
            context = {
                "settings": self.settings,
                "window": _window_context(self.window),
                "row": row,
            }
            query = {k: render(v, context) for k, v in spec.query.items()}
            headers = {k: render(v, context) for k, v in spec.headers.items()}
            family = ",".join(str(v) for v in row.values()) if row else self.worker_id
            request = Request(
                render(spec.path, context),
                method=spec.method,
                params={k: v for k, v in query.items() if v not in (None, "")},
                headers={k: str(v) for k, v in headers.items() if v not in (None, "")} or None,
                conditional=spec.conditional,
                meta={"family": family},
            )
            yield from self.paginator.firsts(request, self.window)

    def parse(self, response, request):
        """The records of one page, the source's total, then the next page."""
        body = exact_json(response)
        if self.spec.error and at_path(body, self.spec.error):
            raise SourceError(f"{self.spec.error}: {at_path(body, self.spec.error)}")
        records = at_path(body, self.spec.records)
        if not isinstance(records, list):
            where = self.spec.records or "the body"
            raise SourceError(f"expected a list of records at {where}: {str(body)[:200]}")
        if self.spec.totals:
            total = at_path(body, self.spec.totals)
            if total is None:
                raise SourceError(f"the body has no total at {self.spec.totals}")
            yield Expected(request.meta.get("family", self.worker_id), int(total))
        for item in records:
            if self.stamped and isinstance(item, dict):
                item = {**item, **dict.fromkeys(self.stamped, self.started_at)}
            yield item
        following = self.paginator.follow(request, response, body, records)
        if following is not None:
            yield following


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
        return EpochSeconds
    if spec.format == "epoch_ms":
        return EpochMillis
    kind = _PYTHON_TYPES[column.type]
    if spec.scale is not None:
        scale = spec.scale
        from typing import Annotated

        return Annotated[kind, AfterValidator(lambda v: v * scale)]
    return kind


def record_model(spec: RestSourceSpec, name: str) -> type[Record]:
    """The record model of a declaration: one field per declared column."""
    fields: dict[str, Any] = {}
    for column in table_columns(spec.model_dump()):
        how = spec.field(column.name)
        kind = _field_type(column, how)
        required = column.key or column.required
        path = (how.path or column.name).split(".")
        bounds = {
            k: v
            for k, v in how.model_dump(
                include={"gt", "ge", "lt", "le", "pattern", "min_length"}
            ).items()
            if v is not None
            and not (kind in (NonNegativeExact, PositiveExact) and k in ("ge", "gt"))
        }
        alias = None if how.value else (path[0] if len(path) == 1 else AliasPath(*path))
        field = Field(... if required else None, validation_alias=alias, **bounds)
        fields[column.name] = (kind if required else kind | None, field)
    return create_model(name, __base__=Record, __doc__=f"One record of {spec.worker_id}.", **fields)


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
        if key in inherited:
            fields[key] = (inherited[key].annotation, setting.default)
            continue
        kind = type(setting.default) if setting.default is not None else str
        bounds = {k: v for k, v in (("ge", setting.ge), ("le", setting.le)) if v is not None}
        if setting.secret:
            fields[key] = (kind | None, secret(setting.default, description=setting.description))
        else:
            fields[key] = (kind, Field(setting.default, description=setting.description, **bounds))
    return create_model(name, __base__=ScheduledSettings, **fields)


def _partitions(spec: RestSourceSpec):
    if spec.partitions is None:
        return None
    kind = DailyPartitions if spec.partitions.kind == "daily" else TradingDayPartitions
    return kind(start=spec.partitions.start, timezone=spec.partitions.timezone)


def source_class(declaration: Declaration) -> type[DeclaredSource]:
    """The `Source` subclass of a declaration (registered in the worker catalogue once made)."""
    spec = RestSourceSpec.model_validate(declaration.attributes)
    existing = _MADE.get(spec.worker_id)
    if existing is not None:
        return existing
    camel = "".join(part.title() for part in spec.worker_id.split("_"))
    attributes = {
        "__doc__": spec.description
        or f"{spec.worker_id}, declared in {declaration.folder.name}/defs.yaml",
        "__module__": __name__,
        "worker_id": spec.worker_id,
        "group": spec.group,
        "description": spec.description,
        "table": tables.metadata.tables[spec.table["name"]],
        "key": tuple(spec.key) if spec.key else None,
        "record": record_model(spec, f"{camel}Record"),
        "Settings": settings_model(spec, f"{camel}Settings"),
        "partitions": _partitions(spec),
        "fresh_within": duration(spec.fresh_within),
        "date_column": spec.partitions.date_column if spec.partitions else None,
        "headers": spec.headers,
        "totals": spec.totals is not None,
        "spec": spec,
        "folder": declaration.folder,
    }
    cls = _MADE[spec.worker_id] = type(camel, (DeclaredSource,), attributes)
    return cls


_MADE: dict[str, type[DeclaredSource]] = {}


def load_declared_sources() -> dict[str, type[DeclaredSource]]:
    """Every declared source's class, by worker id (made once, registered in the catalogue)."""
    return {d.worker_id: source_class(d) for d in declarations()}


def declared_sources() -> dict[str, type[DeclaredSource]]:
    """The declared sources of the worker catalogue (after it loaded)."""
    catalogue()
    return dict(sorted(_MADE.items()))
