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
``{window.days}``, ``{window.days_back}`` (days from the window's start to today, today
included), ``{row.<column>}``)
are rendered per request; a query or header that renders to nothing is not sent. A query value may
be a rule on the window: ``{days_back: {more_than: 60, then: 0}}`` sends the day count, or `then`
when the window starts further back (an API's "0 = the whole history"). `request.for_each` sends the request once per row of another table. Nothing here imports
Dagster: the catalogue and the replay read the declarations too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import func, or_, select

from ingestion_pipelines.config.workers import catalogue
from ingestion_pipelines.sources.base import (
    DailyPartitions,
    Expected,
    Request,
    Source,
    SourceError,
    TradingDayPartitions,
)
from ingestion_pipelines.sources.declared_body import (
    Found,
    check_required,
    decode_body,
    found_records,
)
from ingestion_pipelines.sources.declared_columns import rows_from_columns
from ingestion_pipelines.sources.declared_each import as_mapping, settings_rows
from ingestion_pipelines.sources.declared_html import parse_html, record_for_format
from ingestion_pipelines.sources.declared_missing import missing_record
from ingestion_pipelines.sources.declared_models import record_model, settings_model
from ingestion_pipelines.sources.declared_render import (
    _window_context,
    render,
    render_body,
    render_query,
)
from ingestion_pipelines.sources.declared_spec import RestSourceSpec, duration
from ingestion_pipelines.sources.declared_subset import subset_clauses
from ingestion_pipelines.sources.declared_values import (
    classified,
    json_safe,
    run_context,
    set_value,
    template_scopes,
)
from ingestion_pipelines.sources.declared_window import within_window
from ingestion_pipelines.sources.paginators import PaginatorSpec, at_path
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.declared import Declaration, declarations
from ingestion_pipelines.vnmarket.business_hours import BusinessHours


class DeclaredSource(Source):
    """A source run from its declaration (`spec`); subclasses are made by `source_class`."""

    spec: ClassVar[RestSourceSpec]
    folder: ClassVar[Any]

    def __init__(self, settings, window=None):
        super().__init__(settings, window)
        self.started_at = datetime.now(UTC)
        self.window_context = _window_context(window)  # once a run, not once a record
        context = {"settings": settings, "window": self.window_context}
        paginator = PaginatorSpec.of(self.spec.paginator)
        rendered = {k: render(v, context) for k, v in paginator.arguments.items()}
        self.paginator = paginator.build(**rendered)
        # str(): orjson refuses str subclasses (SQLAlchemy's quoted_name) as keys of a dead letter
        self.stamped = [str(c.name) for c in self.table.columns if self.spec.field(c.name).is_set]
        self.setters = [(column, self.spec.field(column)) for column in self.stamped]
        # what every record of a page shares (a constant, a setting, {row.x}, ...): set once a page
        self.page_setters = [(c, how) for c, how in self.setters if _same_for_a_page(how)]
        self.record_setters = [(c, how) for c, how in self.setters if not _same_for_a_page(how)]

    def history(self, run_id):
        """The declared `history` table keeps every value an update replaces (with when and by
        which run); None: an update replaces the row and nothing else is kept."""
        if self.spec.history is None:
            return None
        from ingestion_pipelines.storage.upsert import History

        table = tables.metadata.tables[self.spec.history]
        return History(table, {"replaced_at": datetime.now(UTC), "run_id": run_id})

    def rows_for_each(self) -> list[dict[str, Any] | None]:
        """The rows of the `for_each` table (one request each), or [None] when there is none."""
        for_each = self.spec.request.for_each
        if for_each is None:
            return [None]
        if for_each.settings is not None:
            return settings_rows(for_each, self.settings, self.window)
        from ingestion_pipelines.core.settings import get_settings
        from ingestion_pipelines.storage.engines import get_engine

        table = tables.metadata.tables[for_each.table]
        columns = [table.c[c] for c in for_each.columns]
        query = select(*columns).distinct().order_by(*columns)
        query = query.where(*subset_clauses(for_each, table, self.settings))
        if for_each.within and self.window is not None:
            first, last = (table.c[c] for c in for_each.within)
            query = query.where(
                or_(first.is_(None), first <= self.window.last_day),
                or_(last.is_(None), last >= self.window.start),
            )
        url = self.settings.database_url or get_settings().database_url
        with get_engine(url).connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
            if not rows and conn.execute(select(func.count()).select_from(table)).scalar() == 0:
                writer = f" `{self.upstream[0]}`" if self.upstream else ""
                raise SourceError(
                    f"for_each: table `{for_each.table}` is empty: its writer{writer} has not "
                    "stored a row yet, so there is nothing to ask for (run it first)"
                )
            return rows

    def build_requests(self):
        """The declared request, once (or once per `for_each` row), started by the paginator."""
        spec = self.spec.request
        for row in self.rows_for_each():
            context = {
                "settings": self.settings,
                "window": self.window_context,
                "row": row,
                "run": run_context(self.started_at),
            }
            query = {k: render_query(v, context) for k, v in spec.query.items()}
            headers = {k: render(v, context) for k, v in spec.headers.items()}
            family = ",".join(str(v) for v in row.values()) if row else self.worker_id
            request = Request(
                render(spec.path, context),
                method=spec.method,
                params={k: v for k, v in query.items() if v not in (None, "")},
                json=None if spec.body is None else render_body(spec.body, context),
                headers={k: str(v) for k, v in headers.items() if v not in (None, "")} or None,
                conditional=spec.conditional,
                meta={"family": family, "row": json_safe(row)},
            )
            yield from self.paginator.firsts(request, self.window)

    def _found(self, body) -> list[Found]:
        """The records of a body and where each was."""
        if self.spec.rows_from_columns:  # one object of arrays (sources/declared_columns.py)
            columns = at_path(body, self.spec.records_spec().path)
            rows = rows_from_columns(columns, self.spec.rows_from_columns)
            return [Found(row, body) for row in rows]
        return found_records(body, self.spec.records_spec(), self.spec.format)

    def parse(self, response, request):
        """The records of one page, the source's total, then the next page."""
        if self.spec.format == "html":
            yield from parse_html(self, response, request)
            return
        body = decode_body(response.content, self.spec.format)
        if (rejected := missing_record(self.spec, body, request, response.content)) is not None:
            yield rejected  # one item answered without its record (sources/declared_missing.py)
            return
        if self.spec.error and at_path(body, self.spec.error):
            raise SourceError(f"{self.spec.error}: {at_path(body, self.spec.error)}")
        check_required(body, self.spec.require)
        found = self._found(body)
        records = [each.item for each in found]
        if self.spec.totals:
            total = at_path(body, self.spec.totals)
            if total is None:
                raise SourceError(f"the body has no total at {self.spec.totals}")
            yield Expected(request.meta.get("family", self.worker_id), int(total))
        stamp = self.stamper(body, request)
        for each in within_window(self, found):  # sources/declared_window.py
            yield stamp(each)
        following = self.paginator.follow(request, response, body, records)
        if following is not None:
            yield following

    def with_set_values(self, found: Found, body, request):
        """A record with the columns its declaration sets (`value:`) filled in; a JSON-array
        record read as the mapping of its indexes."""
        return self.stamper(body, request)(found)

    def stamper(self, body, request):
        """`with_set_values` for the records of one page (`body`, `request`): the values every
        record of the page shares are computed once, at its first record (a hot path)."""
        shared: dict[str, Any] | None = None
        row = request.meta.get("row")

        def stamp(found: Found):
            nonlocal shared
            item = as_mapping(found.relabelled())
            if not self.stamped or not isinstance(item, dict):
                return item
            context = {
                "settings": self.settings,
                "window": self.window_context,
                "row": row,
                "started_at": self.started_at,
                "list": found.list_name,
                "parent": found.parent,
                "body": body,
            }
            if shared is None:
                shared = {
                    column: self._set(how, context, item) for column, how in self.page_setters
                }
            values = {column: self._set(how, context, item) for column, how in self.record_setters}
            return {**item, **shared, **values}

        return stamp

    @staticmethod
    def _set(how, context, item):
        return classified(how.rules, item) if how.rules else set_value(how.value, context)


def _same_for_a_page(how) -> bool:
    """Whether a `value:` is the same for every record of a page (it reads no record's list
    or parent, and no `rules:` classify the record)."""
    return not how.rules and not template_scopes(how.value) & {"list", "parent"}


def _partitions(spec: RestSourceSpec):
    if spec.partitions is None:
        return None
    kind = DailyPartitions if spec.partitions.kind == "daily" else TradingDayPartitions
    return kind(start=spec.partitions.start, timezone=spec.partitions.timezone)


def _upstream(spec: RestSourceSpec) -> tuple[str, ...]:
    """The worker whose table `request.for_each` reads: this source's upstream asset."""
    from ingestion_pipelines.storage.declared import writers_by_table

    for_each = spec.request.for_each if spec.request is not None else None
    if for_each is None or for_each.table is None:
        return ()
    writer = writers_by_table().get(for_each.table)
    return (writer,) if writer and writer != spec.worker_id else ()


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
        "record": record_for_format(spec, record_model(spec, f"{camel}Record")),
        "Settings": settings_model(spec, f"{camel}Settings"),
        "partitions": _partitions(spec),
        "fresh_within": duration(spec.fresh_within),
        "business_hours": BusinessHours.of(spec.business_hours) if spec.business_hours else None,
        "date_column": spec.partitions.date_column if spec.partitions else None,
        "headers": spec.headers,
        "totals": spec.totals is not None,
        "resumable": spec.resumable,
        "spec": spec,
        "folder": declaration.folder,
        "upstream": _upstream(spec),
    }
    base: type[DeclaredSource] = DeclaredSource
    if spec.providers:  # several providers, one table (loaded as a hook is: no import cycle)
        from ingestion_pipelines.sources.declared_hooks import load_hook

        base = load_hook("ingestion_pipelines.sources.declared_providers:ProvidersSource", base)
    if spec.hook:  # code the declaration cannot say (sources/declared_hooks.py)
        from ingestion_pipelines.sources.declared_hooks import hooked, load_hook

        base = load_hook(spec.hook, DeclaredSource)
        attributes = hooked(base, DeclaredSource, attributes)
    cls = _MADE[spec.worker_id] = type(camel, (base,), attributes)
    return cls


_MADE: dict[str, type[DeclaredSource]] = {}


def load_declared_sources() -> dict[str, type[DeclaredSource]]:
    """Every declared source's class, by worker id (made once, registered in the catalogue)."""
    return {d.worker_id: source_class(d) for d in declarations()}


def declared_sources() -> dict[str, type[DeclaredSource]]:
    """The declared sources of the worker catalogue (after it loaded)."""
    catalogue()
    return dict(sorted(_MADE.items()))
