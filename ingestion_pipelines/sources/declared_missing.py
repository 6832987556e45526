"""A `for_each` item answered without its record: one dead letter, not a failed run.

    request: {for_each: {table: stock, columns: [symbol]}, ...}   # one request per stock
    error: errors
    records: {path: data.CompanyListingInfo, one: true, missing: dead_letter}

An answer is the item's own problem, and yields a `Rejected` (its raw body to `dead_letter`, the
reason naming the item, counted as fetched and rejected: the run goes on under its reject
threshold), when the service answered the request and said nothing of this item:

- the record is null or absent while the object holding it is there (``{"data":
  {"CompanyListingInfo": null}}``: GraphQL's answer for a nullable field it resolved to nothing);
- the `error` list holds field errors only (each names the `path` of the field that failed, the
  GraphQL spec's §7.1.2): the item's answer is partial, and a partial record is not stored.

The source fails, naming it, the URL and the cause, as before: a body without the holding object
(``{}``: an endpoint switched off, an HTML error page), an error naming no field (a query refused,
a variable rejected: every item would fail alike), or one asking a login (``extensions.code``
UNAUTHENTICATED / FORBIDDEN). HTTP errors fail the run in the runner, as for every source.

`one_selected` is the replay's side: with ``replay.select`` (a request parameter, dotted into a
JSON body's objects: ``variables.ticker``, and the record path naming the item), the recorded
record the request names, or null at the record path when none is recorded (the answer above).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ingestion_pipelines.sources.base import Rejected
from ingestion_pipelines.sources.declared_select import selected
from ingestion_pipelines.sources.paginators import at_path

LOGIN_CODES = frozenset({"UNAUTHENTICATED", "FORBIDDEN"})  # GraphQL servers' codes for a login


def missing_record(spec, body: Any, request, content: bytes) -> Rejected | None:
    """The `Rejected` of an item answered without its record (see above), else None (the body
    is read as usual: its records, or the run's failure)."""
    records, row = spec.records, request.meta.get("row")
    if isinstance(records, str) or records.missing != "dead_letter" or not row:
        return None  # (a hot path: every page of every declared source)
    holder_path = records.path.rpartition(".")[0]
    holder = at_path(body, holder_path) if holder_path else body
    if not isinstance(holder, Mapping):
        return None  # the service did not answer the query: the run fails
    item = ", ".join(f"{k}={v}" for k, v in row.items())
    errors = at_path(body, spec.error) if spec.error else None
    if errors:
        if not _field_errors_only(errors):
            return None
        said = "; ".join(_described(e) for e in errors)
        return Rejected(f"{item}: the source answered errors for it: {said}", content, row)
    if at_path(holder, records.path.rpartition(".")[2]) is None:
        return Rejected(f"{item}: no record at {records.path} (null)", content, row)
    return None


def _field_errors_only(errors: Any) -> bool:
    """Whether every error names the field that failed and none asks a login."""
    if not isinstance(errors, list):
        return False
    return all(
        isinstance(e, Mapping)
        and e.get("path")
        and at_path(e, "extensions.code") not in LOGIN_CODES
        for e in errors
    )


def _described(error: Mapping[str, Any]) -> str:
    path = ".".join(str(p) for p in error.get("path") or ())
    return f"{error.get('message')} (at {path})"


def flattened(body: Any, prefix: str = "") -> dict[str, Any]:
    """A JSON body's values by dotted name (``{"variables": {"ticker": "VCB"}}`` →
    ``{"variables": {...}, "variables.ticker": "VCB"}``)."""
    if not isinstance(body, Mapping):
        return {}
    names: dict[str, Any] = {}
    for key, value in body.items():
        names[prefix + key] = value
        names.update(flattened(value, f"{prefix}{key}."))
    return names


def one_selected(payload, params: Mapping[str, Any], rules: Mapping[str, Any]) -> Any:
    """The recorded body with the record `params` name at its record path (null: none)."""
    chosen = selected(payload.records, rules, params)
    body = copy.deepcopy(payload.body)
    *parents, last = payload.records_path.split(".")
    node = body
    for part in parents:
        node = node[part]
    node[last] = chosen[0] if chosen else None
    return body
