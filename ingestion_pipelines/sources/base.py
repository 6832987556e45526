"""What a scheduled source declares. The factory (`sources.factory`) makes it a Dagster asset;
the runner (`sources.runner`) fetches, parses, validates and writes.

A source is a class of attributes plus at most two methods:

- `build_requests()` yields the first requests of a run (from `self.settings`, `self.window`);
- `parse(response, request)` yields raw records (dicts as the source sent them: the `Record` model
  maps and validates them, and a record that fails goes to `dead_letter` unaltered), Scrapy
  style, further `Request`s (next page, per-item detail), and `Expected` totals.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    AliasPath,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from sqlalchemy import Table

from ingestion_pipelines.config.workers import ScheduledSettings, WorkerSpec, catalogue, register
from ingestion_pipelines.core import values
from ingestion_pipelines.core.discovery import declared_subclasses
from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.core.timezones import ICT_NAME
from ingestion_pipelines.storage.upsert import History


class SourceError(IngestError, RuntimeError):
    """A source failed: the message names the worker, the URL and the cause."""


@dataclass(frozen=True)
class DailyPartitions:
    """Daily partitions of calendar days in `timezone`, from `start` ("YYYY-MM-DD")."""

    start: str
    timezone: str = ICT_NAME


@dataclass(frozen=True)
class TradingDayPartitions:
    """One partition per trading day of the Vietnamese exchanges (`market_calendar`), ICT, from
    `start` ("YYYY-MM-DD"): weekends and market holidays have no partition."""

    start: str
    timezone: str = ICT_NAME


@dataclass(frozen=True)
class Window:
    """The calendar days a run covers: `start` inclusive to `end` exclusive (None: unpartitioned)."""

    start: date
    end: date
    timezone: str

    @property
    def days(self) -> int:
        """Calendar days in the window."""
        return (self.end - self.start).days

    @property
    def last_day(self) -> date:
        """The last day in the window (`end` is exclusive)."""
        return self.end - timedelta(days=1)

    def contains(self, day: date) -> bool:
        """True when `day` is in the window."""
        return self.start <= day < self.end


@dataclass
class Request:
    """One HTTP request. `path` is appended to the worker's `base_url` unless it is a full URL."""

    path: str
    method: str = "GET"
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None
    conditional: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def url(self, base_url: str) -> str:
        """The absolute URL of the request under `base_url` (an absolute path is kept)."""
        if "://" in self.path:
            return self.path
        return f"{base_url.rstrip('/')}/{self.path.lstrip('/')}"

    def send(self, session, base_url: str, headers: Mapping[str, str], *, conditional: bool):
        """The request through a crawl `session`: under `base_url`, the source's `headers` under
        its own (`conditional`: a conditional GET, for a request that allows it)."""
        return session.request(
            self.method,
            self.url(base_url),
            params=self.params,
            json=self.json,
            headers={**headers, **(self.headers or {})},
            conditional=conditional,
        )


@dataclass(frozen=True)
class Expected:
    """What the source itself says a family of requests holds: `parse` yields one (for example
    from a paged listing's `total`) and the runner compares it with the records it fetched, so a
    crawl that stops short is visible (`records_expected`, the `complete` check)."""

    family: str
    total: int


@dataclass(frozen=True)
class Rejected:
    """A record the answer should hold and does not (one stock's profile null): `parse` yields it
    and the runner counts it as fetched and rejected, its raw body to `dead_letter` with `reason`
    and `key` (what was asked); the run goes on, under its reject threshold."""

    reason: str
    raw: bytes
    key: dict[str, Any] = field(default_factory=dict)


_UNMAPPED_KEY = "\x00unmapped"


class Record(BaseModel):
    """Base of record models: a record maps one raw item to one row of the source's table.

    Whatever the raw item holds that no field reads (by its alias, alias path or name) is kept
    in the row's `extra` column, verbatim as JSON (exact decimals as text), so no field is ever
    lost.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)
    # Filled by `_keep_unmapped` under a key no source sends; `row()` names it `extra`.
    unmapped_fields_: dict[str, Any] | None = Field(None, validation_alias=_UNMAPPED_KEY)

    @model_validator(mode="before")
    @classmethod
    def _keep_unmapped(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {**data, _UNMAPPED_KEY: unmapped(data, cls.mapped_paths())}
        return data

    @classmethod
    def mapped_paths(cls) -> PathTree:
        """The raw paths the fields read (their aliases, alias paths and names), as a tree."""
        tree = _PATH_TREES.get(cls)
        if tree is None:
            paths: list[tuple[str, ...]] = []
            for name, info in cls.model_fields.items():
                paths.append((name,))
                alias = info.validation_alias
                for choice in alias.choices if isinstance(alias, AliasChoices) else [alias]:
                    if isinstance(choice, str):
                        paths.append((choice,))
                    elif isinstance(choice, AliasPath):
                        paths.append(tuple(str(p) for p in choice.path))
            tree = _PATH_TREES[cls] = path_tree(paths)
        return tree

    @property
    def extra(self) -> dict[str, Any] | None:
        """The fields of the raw item no column reads (the row's `extra`)."""
        return self.unmapped_fields_

    def row(self) -> dict[str, Any]:
        """The row to upsert: the model's fields and `extra`."""
        row = self.model_dump(exclude={"unmapped_fields_"})
        row["extra"] = self.unmapped_fields_
        return row


PathTree = dict[str, "PathTree | None"]  # None: the whole value is read
_PATH_TREES: dict[type, PathTree] = {}


def path_tree(paths: Iterable[tuple[str, ...]]) -> PathTree:
    """Paths as a tree of keys; a path read whole wins over paths into it."""
    tree: PathTree = {}
    for path in paths:
        node = tree
        for depth, key in enumerate(path):
            if depth == len(path) - 1:
                node[key] = None
            elif key in node and node[key] is None:
                break
            else:
                node = node.setdefault(key, {})
    return tree


def unmapped(raw: Mapping[str, Any], read: PathTree) -> dict[str, Any] | None:
    """`raw` without what `read` reads, as plain JSON values (exact decimals as text); None if
    nothing is left. A path into a nested object removes that leaf only; an object left empty,
    or a null where an object was read, goes too."""
    return _prune(raw, read) or None


def _prune(node: Mapping[str, Any], read: PathTree) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in read:
            out[key] = _plain(value)
            continue
        inner = read[key]
        if inner is None or value is None:
            continue
        if isinstance(value, Mapping):
            if pruned := _prune(value, inner):
                out[key] = pruned
        else:
            out[key] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)  # Decimal: its exact text


class Source:
    """A scheduled worker. Subclasses set the attributes and are registered when imported."""

    worker_id: ClassVar[str]
    group: ClassVar[str] = "crawl"
    description: ClassVar[str] = ""
    table: ClassVar[Table]
    key: ClassVar[tuple[str, ...] | None] = None  # default: the table's primary key
    record: ClassVar[type[Record]]
    Settings: ClassVar[type[ScheduledSettings]] = ScheduledSettings
    partitions: ClassVar[DailyPartitions | TradingDayPartitions | None] = None
    fresh_within: ClassVar[timedelta] = timedelta(hours=26)
    date_column: ClassVar[str | None] = None  # the table's date column partitions map to
    headers: ClassVar[Mapping[str, str]] = {}
    # Whether `parse` yields the source's own totals (`Expected`): only then has the asset a
    # `complete` check (a source that says nothing about its size gets no green check for it).
    totals: ClassVar[bool] = False
    # Whether an unpartitioned crawl checkpoints its requests as a partitioned one does (a long
    # full-history crawl that must resume after a crash without fetching its done requests again).
    resumable: ClassVar[bool] = False
    # The workers whose rows this one reads (a declaration's `for_each` table): its upstream
    # assets, run first by the demo and the deploy test.
    upstream: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "worker_id" in cls.__dict__:
            register(WorkerSpec(cls.worker_id, "scheduled", cls.Settings, cls.description))

    def __init__(self, settings: ScheduledSettings, window: Window | None = None):
        self.settings = settings
        self.window = window

    def history(self, run_id: str | None) -> History | None:
        """Where the versions of the rows a batch updates are kept (`storage.upsert.History`);
        None (the default): an update replaces the row and nothing else is kept."""
        return None

    def build_requests(self) -> Iterable[Request]:
        """The requests of one run. The default: one GET of the base URL."""
        yield Request("/")

    def parse(self, response, request: Request) -> Iterator[Mapping[str, Any] | Request]:
        """Yield raw records and follow-up requests. The default: a JSON list of records."""
        yield from response.json()


def source_classes() -> dict[str, type[Source]]:
    """Every source class of the worker catalogue, by worker id. A class whose `worker_id` is set
    after it was made (a test's own source) is not in the catalogue."""
    import ingestion_pipelines.sources  # noqa: F401 - registers the sources
    from ingestion_pipelines.sources.declared_hooks import owns_asset

    workers = catalogue()
    return {
        w: cls
        for w, cls in declared_subclasses(Source).items()
        if w in workers and not owns_asset(cls)  # not a hook owning its asset (lyngsat)
    }


def first_run_waves(worker_ids: list[str]) -> list[list[str]]:
    """`worker_ids` in waves for a first run: a worker comes after the workers it reads
    (`Source.upstream`), so its first run finds their rows. Workers that are not sources (derived
    assets) and upstreams outside `worker_ids` impose no order."""
    from ingestion_pipelines.storage.declared import upstream_workers

    upstream = upstream_workers()  # from the declarations: no class made elsewhere stands in
    left = list(worker_ids)
    waves: list[list[str]] = []
    while left:
        pending = set(left)
        ready = [w for w in left if not (set(upstream.get(w, ())) & pending)]
        if not ready:  # a cycle cannot be declared today; run the rest together rather than hang
            ready = left
        waves.append(ready)
        left = [w for w in left if w not in ready]
    return waves


# ---- field types shared by record models ----------------------------------------------------


# Integers past 64 bits are kept as Decimal: a hostile `1e21`-sized integer must still be
# dead-lettered (orjson cannot write such an int) and is refused by the column checks anyway.
_MAX_INT_DIGITS = 18


def _json_int(text: str) -> int | Decimal:
    return int(text) if len(text.lstrip("-")) <= _MAX_INT_DIGITS else Decimal(text)


def exact_json(response) -> Any:
    """Decode a JSON body keeping every number with a fraction as an exact Decimal."""
    return json.loads(response.content, parse_float=Decimal, parse_int=_json_int)


def _from_epoch(value: Any, scale: int) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return datetime.fromtimestamp(int(value) / scale, UTC)
    return value


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a time without timezone")
    return value.astimezone(UTC)


EpochMillis = Annotated[
    datetime, BeforeValidator(lambda v: _from_epoch(v, 1000)), AfterValidator(_to_utc)
]
EpochSeconds = Annotated[
    datetime, BeforeValidator(lambda v: _from_epoch(v, 1)), AfterValidator(_to_utc)
]
UtcTime = Annotated[datetime, AfterValidator(_to_utc)]
# Exact decimals: never floats, finite and within DECIMAL(38,18); positive variants where the
# domain says so (see `ingestion_pipelines.core.values`).
Exact = values.Exact
PositiveExact = values.PositiveExact
NonNegativeExact = values.NonNegativeExact
