"""The replay of a source declared in YAML: its recorded payload served at its real path.

The declaration's ``replay`` says where and how (``defs/<worker_id>/defs.yaml``)::

    replay:
      base_path: /api/v3                 # INGEST_<WORKER>__BASE_URL = server root + base_path
      file: coingecko_coins_markets.json # in the folder's data/ (its line in data/PROVENANCE.md)
      path: /res/products/20             # where a templated request path was recorded
      page_size: per_page                # the parameter asking a page size (paged sources; in
                                         # the JSON body when the paginator pages `where: body`)
      require: {vs_currency: usd}        # a request without these answers 400, as the service does
      rate_limited: coingecko            # a per-minute budget name (--coingecko-rate-limit)
      throttle_body: {...}               # what a 429 there carries
      select: {q: {clauses: "~"}}        # the records each request asks for (declared_select)
      simulator: module:name             # records made for what is not recorded (declared_simulator)
      answer: module:function            # a simulator answers every request (declared_answer)
      settings: {fund_ids: "20"}         # what the worker must ask against the replay (the subset
                                         # its recordings hold): INGEST_<WORKER>__<SETTING>
      also: [other_days.json]            # more recordings of the same request, their records
                                         # served with the file's (selected per request)

The recorded file is one body as the service sends it (the record list at the declaration's
``records`` path); pages are cut from its records by the declared paginator's parameters. Tests
and `ingest replay` switch real servers' behaviours per worker on
``dataset.recorded[worker_id]``: ``page_cap`` (a page size the server applies whatever was
asked) and ``over_return`` (records of the page before served again at the start of a page, as
servers whose pages overlap do); the server's ``latency_s`` applies to every answer.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ingestion_pipelines.replay.routes import (
    ROUTES,
    ReplayRequest,
    Response,
    base_path,
    dataset_part,
    rate_limited,
    route,
    setting_value,
    throttle_body,
)
from ingestion_pipelines.sources.declared import DeclaredSource, load_declared_sources
from ingestion_pipelines.sources.declared_answer import load_answer
from ingestion_pipelines.sources.declared_body import (
    decode_body,
    found_records,
    served_whole,
    xml_bytes,
)
from ingestion_pipelines.sources.declared_columns import rows_from_columns
from ingestion_pipelines.sources.declared_defaults import page_size_param
from ingestion_pipelines.sources.declared_html import HTML_CONTENT_TYPE, recorded_html
from ingestion_pipelines.sources.declared_missing import flattened, one_selected
from ingestion_pipelines.sources.declared_select import (
    request_params,
    selected,
    total_paths,
    with_totals,
)
from ingestion_pipelines.sources.declared_simulator import with_simulator
from ingestion_pipelines.sources.declared_time_replay import time_range_page
from ingestion_pipelines.sources.paginators import OffsetLimit, PageNumber, PaginatorSpec, at_path

if TYPE_CHECKING:
    from ingestion_pipelines.replay.dataset import ReplayDataset

DEFAULT_PAGE_SIZE = 100  # what a paged replay applies when no size is asked


@dataclass
class RecordedPayload:
    """What one declared source's replay serves; tests change `records` or the switches."""

    body: Any  # the recorded body (its record list is replaced by a page); bytes: an HTML page
    records_path: str
    records: list[Any]
    page_cap: int | None = None
    over_return: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    raw: bytes | None = None  # the recorded file, served as it is while no test changed it
    # the records one request asks for (params, rules); default: `replay.select`'s rules over
    # `records`. A test or benchmark may put a simulator here (records made per request).
    selector: Callable[[dict[str, Any], dict[str, Any]], list] | None = None

    def select(self, params: dict[str, Any], rules: dict[str, Any]) -> list:
        """The records a request with `params` asks for."""
        if self.selector is not None:
            return self.selector(params, rules)
        return selected(self.records, rules, params) if rules else self.records


def recorded_payload(source: type[DeclaredSource]) -> RecordedPayload:
    """The recorded body of a declared source, read from its folder's data/."""
    replay = source.spec.replay or {}
    if source.spec.format == "html":  # served as recorded; its records are the readable rows
        page = (source.folder / "data" / replay["file"]).read_bytes()
        return RecordedPayload(page, "", recorded_html(source.spec, page))
    raw = (source.folder / "data" / replay["file"]).read_bytes()
    if served_whole(source.spec):
        # JSON as floats: what Response.json writes back once a test changed a record
        xml = source.spec.format == "xml"
        body = decode_body(raw, source.spec.format) if xml else json.loads(raw)
        records = [
            f.item for f in found_records(body, source.spec.records_spec(), source.spec.format)
        ]
        return RecordedPayload(body, source.spec.records_spec().path, records, raw=raw)
    body = json.loads(raw)
    records = at_path(body, source.spec.records_spec().path)
    for more in replay.get("also", ()):  # more recordings of the same request (other days)
        more_body = json.loads((source.folder / "data" / more).read_bytes())
        records = [*records, *at_path(more_body, source.spec.records_spec().path)]
    if source.spec.rows_from_columns:  # served as recorded; its rows are what the checks read
        records = rows_from_columns(records, source.spec.rows_from_columns)
    if not isinstance(records, list):
        raise ValueError(f"{source.worker_id}: no record list at {source.spec.records!r}")
    return RecordedPayload(body, source.spec.records_spec().path, records)


def _whole_body(source: type[DeclaredSource], payload: RecordedPayload) -> Response:
    """The recorded body (records nested, in lists or XML: served whole, never paged)."""
    xml = source.spec.format == "xml"
    content_type = "text/xml; charset=utf-8" if xml else "application/json"
    if payload.raw is not None:
        return Response(200, payload.raw, {"Content-Type": content_type})
    if xml:
        return Response(200, xml_bytes(payload.body), {"Content-Type": content_type})
    return Response.json(payload.body)


def _with_records(body: Any, path: str, records: list[Any]) -> Any:
    if not path:
        return records
    body = copy.copy(body)
    node = body
    *parents, last = path.split(".")
    for part in parents:
        node[part] = copy.copy(node[part])
        node = node[part]
    node[last] = records
    return body


def page_of(
    source: type[DeclaredSource],
    payload: RecordedPayload,
    query: dict[str, str],
    records: list | None = None,
) -> list:
    """The records a request asks for (`records`: those it selects; default: all), cut as the
    paginator's parameters say."""
    replay = source.spec.replay or {}
    if "time_range" in replay:  # read by time (sources/declared_time_replay.py)
        return time_range_page(replay, payload, query)
    paginator = PaginatorSpec.of(source.spec.paginator).build()
    records = payload.records if records is None else records
    if not isinstance(paginator, PageNumber | OffsetLimit):
        return records
    size_param = page_size_param(source.spec)  # replay.page_size, or declared_defaults
    size = int(query.get(size_param) or DEFAULT_PAGE_SIZE) if size_param else len(records)
    size = max(1, min(size, payload.page_cap or size))
    if isinstance(paginator, PageNumber):
        start = (int(query.get(paginator.param) or paginator.start) - paginator.start) * size
    else:
        start = int(query.get(paginator.param) or 0)
    first = max(0, start - payload.over_return) if start else 0
    return records[first : start + size]


def _handler(source: type[DeclaredSource]):
    worker_id = source.worker_id
    required = (source.spec.replay or {}).get("require") or {}
    select = (source.spec.replay or {}).get("select") or {}
    totals = total_paths(source)
    answer = load_answer(source)  # replay.answer (sources/declared_answer.py)

    def serve(request: ReplayRequest, dataset: ReplayDataset) -> Response:
        for name, value in required.items():
            if request.query.get(name, "").lower() != str(value).lower():
                return Response.json({"error": f"invalid or missing parameter {name}"}, 400)
        payload = dataset.recorded[worker_id]
        if answer is not None:
            return answer(request, dataset, payload)
        if source.spec.format == "html":  # the recorded page, whole
            return Response(200, payload.body, {"Content-Type": HTML_CONTENT_TYPE})
        if served_whole(source.spec) and select and source.spec.records_spec().one:
            sent = request.json() if request.body else None  # the record it names, else null
            params = {**request.query, **flattened(sent)}
            return Response.json(one_selected(payload, params, select))
        if served_whole(source.spec):
            return _whole_body(source, payload)
        if source.spec.rows_from_columns:  # one object of arrays: the body as recorded
            return Response.json(payload.body)
        paging = request.query
        sent = request.json() if request.body else None
        if PaginatorSpec.of(source.spec.paginator).arguments.get("where") == "body":
            paging = {k: str(v) for k, v in sent.items()} if isinstance(sent, dict) else {}
        try:
            records = payload.select(request_params(request.query, sent), select)
            page = page_of(source, payload, paging, records)
        except ValueError as exc:
            return Response.json({"error": f"invalid parameters: {exc}"}, 400)
        body = _with_records(payload.body, payload.records_path, page)
        selecting = select or payload.selector is not None
        return Response.json(with_totals(body, totals, len(records)) if selecting else body)

    serve.__name__ = f"serve_{worker_id}"
    return serve


def register_declared() -> list[str]:
    """Register the replay of every declared source that has one; their worker ids."""
    served = []
    for worker_id, source in load_declared_sources().items():
        replay = source.spec.replay
        if not replay:
            continue
        prefix = replay.get("base_path", "")
        served_path = source.spec.replayed_path()
        if prefix + served_path in ROUTES:
            # Another source serves that real path already (a copied folder, before its path is
            # changed): this one is served under its worker id, whole real path after it.
            prefix = f"/{worker_id}{prefix}"
        base_path(worker_id, prefix)
        route(prefix + served_path, source.spec.request.method)(_handler(source))
        if replay.get("throttle_body") is not None:
            throttle_body(prefix + "/", replay["throttle_body"])
        if replay.get("rate_limited"):
            rate_limited(replay["rate_limited"], prefix + "/")
        for setting, value in (replay.get("settings") or {}).items():  # what the recordings hold
            setting_value(worker_id, setting, str(value))
        if source.spec.providers:  # the other providers' recordings, each at its real path
            from ingestion_pipelines.sources.declared_providers_replay import register_providers

            register_providers(source)
        served.append(worker_id)
    return served


@dataset_part("recorded")
def recorded_payloads(dataset: ReplayDataset) -> dict[str, RecordedPayload]:
    """Each declared source's recorded payload, by worker id (with its declared simulator)."""
    return {
        worker_id: with_simulator(source.spec.replay, recorded_payload(source), dataset)
        for worker_id, source in load_declared_sources().items()
        if source.spec.replay
    }


register_declared()  # importing this module serves them (`routes.load_replays` imports it)
