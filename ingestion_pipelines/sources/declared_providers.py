"""Several providers for one declared source: the same table, automatic failover
(`sources/providers.py`), the provider recorded on every row.

The declaration names its own provider (``provider:``) and adds the others under
``providers:``, each with what differs (its base URL, request, paging, records and fields; the
table, key, partitions and settings are shared)::

    provider: vndirect                       # the top-level request/fields are this provider's
    providers:
      vietcap:
        base_url: "{settings.vietcap_base_url}"
        request: {path: /api/chart/OHLCChart/gap-chart, method: POST, body: {...}}
        records: ""
        rows_from_columns: {length: t, columns: [o, h, l, c, v, t], each: true, keep: [symbol]}
        fields: {index_code: {path: symbol, map: {HNXIndex: HNXINDEX}}, close: {path: c, gt: 0}}
    settings:
      providers: {default: [vndirect, vietcap]}   # the order tried, first = preferred

A table column named ``provider`` is set to the provider whose answer a row came from. A
partition (the run's window, per `for_each` row) starts at the first usable provider; a failed
request (401/403/451 blocks it at once; other failures count) is replaced by the next provider's
request for the same partition; a provider whose newest day lags the market calendar (a
partitioned source whose window reaches a due trading day) is stale: the next one is asked too
and its rows overwrite the days both have (if it fails too, the stale provider's rows stand and
the run goes on). Health is kept between runs in
``worker_state.details["providers"]`` (`load_health`/`save_health`); the run's metadata names the
provider per partition, every failover and the health after the run.

``rows_from_columns`` with ``each: true`` reads a list of column-wise objects (one per symbol, as
Vietcap's chart API answers), ``keep`` copying the object's own fields (``symbol``) onto its rows.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from loguru import logger
from sqlalchemy import Engine, select

from ingestion_pipelines.http_client.errors import RunDeadlineExceeded
from ingestion_pipelines.sources.base import Request, SourceError
from ingestion_pipelines.sources.declared import DeclaredSource
from ingestion_pipelines.sources.declared_body import Found
from ingestion_pipelines.sources.declared_columns import rows_from_columns
from ingestion_pipelines.sources.declared_html import record_for_format
from ingestion_pipelines.sources.declared_models import record_model
from ingestion_pipelines.sources.declared_render import render
from ingestion_pipelines.sources.declared_spec import (
    FieldSpec,
    RecordsSpec,
    RequestSpec,
    RestSourceSpec,
    Strict,
)
from ingestion_pipelines.sources.paginators import PaginatorSpec, at_path
from ingestion_pipelines.sources.providers import (
    Failover,
    HealthBook,
    ProvidersExhausted,
    expected_newest_day,
    provider_order,
)

PROVIDER_COLUMN = "provider"
STATE_KEY = "providers"  # worker_state.details[STATE_KEY]: health per provider


class ProviderSpec(Strict):
    """What one more provider of a declared source says differently."""

    base_url: str  # a template, e.g. "{settings.vietcap_base_url}" (so the replay can move it)
    request: RequestSpec
    paginator: dict[str, Any] = {}
    records: str | RecordsSpec = ""
    rows_from_columns: dict[str, Any] | None = None
    totals: str | None = None
    require: dict[str, str] = {}
    error: str | None = None
    headers: dict[str, str] = {}
    fields: dict[str, str | FieldSpec] = {}
    replay: dict[str, Any] | None = None  # {file: ...}: sources/declared_providers_replay.py


def _stamped(spec: RestSourceSpec, name: str) -> RestSourceSpec:
    """`spec` with its `provider` column set to `name` (when the table has one)."""
    columns = spec.table.get("columns", {})
    if PROVIDER_COLUMN not in columns or PROVIDER_COLUMN in spec.fields:
        return spec
    return spec.model_copy(
        update={"fields": {**spec.fields, PROVIDER_COLUMN: FieldSpec(value=name)}}
    )


def primary_name(spec: RestSourceSpec) -> str:
    """The name of the top-level declaration's provider."""
    return spec.provider or "primary"


def primary_spec(spec: RestSourceSpec) -> RestSourceSpec:
    """The declaration as its first provider reads it (its rows stamped with its name, as
    `RestSourceSpec` does when it is validated)."""
    return _stamped(spec, primary_name(spec))


def provider_specs(spec: RestSourceSpec) -> dict[str, tuple[RestSourceSpec, str | None]]:
    """Every provider's own declaration, in declared order, with its base URL template (None:
    the `base_url` setting)."""
    made: dict[str, tuple[RestSourceSpec, str | None]] = {
        primary_name(spec): (primary_spec(spec), None)
    }
    for name, declared in spec.providers.items():
        other = ProviderSpec.model_validate(declared)
        PaginatorSpec.of(other.paginator)
        own = spec.model_copy(
            update={
                "request": other.request,
                "paginator": other.paginator,
                "records": other.records,
                "rows_from_columns": other.rows_from_columns,
                "totals": other.totals,
                "require": other.require,
                "error": other.error,
                "headers": {**spec.headers, **other.headers},
                "fields": other.fields,
                "providers": {},
                "provider": name,
                "replay": None,
                "expect": None,
            }
        )
        made[name] = (_stamped(own, name), other.base_url)
    return made


class ProviderPart(DeclaredSource):
    """One provider's reading of a multi-provider declaration (not a worker of its own)."""

    base_url_template: str | None = None

    def __init__(self, settings, window=None):
        super().__init__(settings, window)
        if self.window_context is not None:  # epoch seconds, as chart APIs take them
            self.window_context = {
                **self.window_context,
                "start_s": self.window_context["start_ms"] // 1000,
                "end_s": self.window_context["end_ms"] // 1000,
            }
        template = self.base_url_template
        self.base_url = None if template is None else str(render(template, {"settings": settings}))

    def _found(self, body) -> list[Found]:
        rule = self.spec.rows_from_columns
        if not (rule and rule.get("each")):
            return super()._found(body)
        objects = at_path(body, self.spec.records_spec().path)
        if not isinstance(objects, list):
            raise SourceError(f"expected a list of column-wise objects, got {str(body)[:200]}")
        found = []
        for each in objects:
            kept = {k: each.get(k) for k in rule.get("keep", ())} if isinstance(each, dict) else {}
            found.extend(Found({**kept, **row}, body) for row in rows_from_columns(each, rule))
        return found


def _part_class(main: type[DeclaredSource], name: str, spec, base_url) -> type[ProviderPart]:
    camel = "".join(p.title() for p in f"{main.worker_id}_{name}".split("_"))
    attributes = {
        "__module__": __name__,
        "__doc__": f"{main.worker_id} as provider {name} answers it",
        "table": main.table,
        "key": main.key,
        "record": record_for_format(spec, record_model(spec, f"{camel}Record")),
        "Settings": main.Settings,
        "partitions": main.partitions,
        "date_column": main.date_column,
        "headers": spec.headers,
        "totals": spec.totals is not None,
        "spec": spec,
        "folder": main.folder,
        "base_url_template": base_url,
    }
    part = type(f"{camel}Provider", (ProviderPart,), attributes)
    part.worker_id = main.worker_id  # set after: a part is not registered as a worker
    return part


class ProvidersSource(DeclaredSource):
    """A declared source with several providers (made by `declared.source_class`)."""

    _parts: dict[str, type[ProviderPart]] | None = None

    @classmethod
    def parts(cls) -> dict[str, type[ProviderPart]]:
        """Each provider's reading of the declaration, in declared order (made once)."""
        if cls.__dict__.get("_parts") is None:
            cls._parts = {
                name: _part_class(cls, name, spec, base_url)
                for name, (spec, base_url) in provider_specs(cls.spec).items()
            }
        return cls._parts

    def __init__(self, settings, window=None):
        super().__init__(settings, window)
        self.by_name = {name: part(settings, window) for name, part in self.parts().items()}
        for part in self.by_name.values():  # one run: one start (a snapshot's captured_at)
            part.started_at = self.started_at
        order = provider_order(getattr(settings, "providers", None), list(self.by_name))
        self.failover = Failover(self.worker_id, order, HealthBook(order))
        self.newest: dict[str, date] = {}  # per partition, over its pages
        self.received: dict[str, int] = {}
        self.observed = None  # the reconciliation's `Observed` (None: not asked yet)

    def observe_providers(self, session, engine) -> None:
        """After the run committed: its other providers asked for its last days, what they say
        kept in `provider_observation` (sources/declared_reconcile.py), `observed` for the check."""
        from ingestion_pipelines.sources.declared_reconcile import observe

        self.observed = observe(self, session, engine)

    def label(self, family: str) -> str:
        """A partition's name: the run's window (and the `for_each` row)."""
        window = self.window
        span = f"{window.start}..{window.last_day}" if window is not None else "now"
        return span if family == self.worker_id else f"{span} {family}"

    def requests_of(self, provider: str, family: str | None = None) -> list[Request]:
        """`provider`'s first requests (of one family, when given), tagged with it."""
        part = self.by_name[provider]
        made = []
        for request in part.build_requests():
            if family is not None and request.meta.get("family") not in (family, self.worker_id):
                continue
            path = request.path if part.base_url is None else request.url(part.base_url)
            meta = {**request.meta, "provider": provider, "partition_family": family}
            made.append(replace(request, path=path, meta=meta))
        return made

    def build_requests(self):
        """Each partition's requests from its first usable provider (chosen when reached, so a
        provider blocked by an earlier partition of the run is skipped)."""
        first = self.failover.order[0]
        families = [r.meta.get("family") for r in self.by_name[first].build_requests()]
        for family in dict.fromkeys(families):
            provider = self.failover.choose(self.label(family))
            yield from self.requests_of(provider, family)

    def record_of(self, request: Request):
        """The record model of the provider that answered `request`."""
        return self.by_name[request.meta.get("provider", self.failover.order[0])].record

    def on_request_failed(self, request: Request, error: BaseException) -> list[Request]:
        """The next provider's requests for `request`'s partition (`ProvidersExhausted` when
        every provider failed it)."""
        if isinstance(error, RunDeadlineExceeded):  # the run's time is up, not the provider's
            raise error
        family = request.meta.get("partition_family") or request.meta.get("family")
        provider = request.meta.get("provider", self.failover.order[0])
        partition = self.label(family)
        try:
            following = self.failover.on_failure(partition, provider, error)
        except ProvidersExhausted:
            if self.failover.provider_of(partition) is None:
                raise
            # asked because an earlier provider was stale: its rows stand, the run goes on
            logger.warning("{}: {} (the stale provider's rows are kept)", partition, error)
            return []
        return self.requests_of(following, family)

    def parse(self, response, request):
        """The answering provider's parse; at a partition's last page, its health is told and a
        stale provider's partition asked of the next one."""
        provider = request.meta.get("provider", self.failover.order[0])
        part = self.by_name[provider]
        family = request.meta.get("partition_family") or request.meta.get("family")
        partition = self.label(family)
        rows, last_page = 0, True
        for item in part.parse(response, request):
            if isinstance(item, Request):
                last_page = False
                yield replace(item, meta={**item.meta, "provider": provider})
                continue
            if isinstance(item, dict):
                rows += 1
                self._note_day(partition, part, item)
            yield item
        self.received[partition] = self.received.get(partition, 0) + rows
        if last_page:
            newest = self.newest.get(partition)
            # records none of which is readable are rejects (the threshold's), not staleness
            judged = newest is not None or not self.received[partition]
            following = self.failover.on_success(
                partition,
                provider,
                newest_day=newest,
                wanted_day=self._wanted_day() if judged else None,
                rows=rows,
            )
            if following is not None:
                self.newest.pop(partition, None)
                self.received.pop(partition, None)
                yield from self.requests_of(following, family)

    def _note_day(self, partition: str, part: ProviderPart, item: dict) -> None:
        column = self.date_column
        if column is None or self.window is None:
            return
        try:
            day = part.record.model_validate(item).row().get(column)
        except Exception:  # noqa: BLE001 - a bad record is rejected by the crawl, not here
            return
        if isinstance(day, datetime):
            day = day.date()
        if isinstance(day, date) and (partition not in self.newest or day > self.newest[partition]):
            self.newest[partition] = day

    def _wanted_day(self) -> date | None:
        """The newest trading day the window needs that is due by now (None: none is due yet,
        or the source is not partitioned by trading days)."""
        if self.window is None or self.partitions is None:
            return None
        due = min(self.window.last_day, expected_newest_day(datetime.now(UTC)))
        return due if due >= self.window.start else None


# -- health between runs (worker_state.details["providers"]) ------------------------------------


def load_health(source: ProvidersSource, engine: Engine) -> None:
    """Read the providers' health saved by the last run into `source.failover`."""
    from ingestion_pipelines.storage.tables import worker_state

    with engine.connect() as conn:
        details = conn.execute(
            select(worker_state.c.details).where(worker_state.c.worker_id == source.worker_id)
        ).scalar()
    saved = (details or {}).get(STATE_KEY) or {}
    failover = source.failover
    failover.book = HealthBook(failover.order, failover.book.policy, saved)


def save_health(source: ProvidersSource, engine: Engine) -> None:
    """Keep the providers' health after the run (other details of the worker kept)."""
    from ingestion_pipelines.storage.tables import worker_state

    health = source.failover.book.snapshot()
    table = worker_state
    with engine.begin() as conn:
        row = conn.execute(select(table).where(table.c.worker_id == source.worker_id)).first()
        if row is None:
            conn.execute(
                table.insert().values(
                    worker_id=source.worker_id, status="scheduled", details={STATE_KEY: health}
                )
            )
        else:
            details = {**(row.details or {}), STATE_KEY: health}
            conn.execute(
                table.update().where(table.c.worker_id == source.worker_id).values(details=details)
            )
