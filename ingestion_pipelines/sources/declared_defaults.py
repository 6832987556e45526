"""What a declaration need not write because the rest of it says it already (a paginated source's
defs.yaml fits in 40 lines with them):

- a string column of the key is never empty: ``min_length: 1`` unless its field says otherwise;
- a paged replay's page-size parameter is the request's parameter sent as ``{settings.page_size}``
  (in the query, or in the JSON body when the paginator pages ``where: body``), unless
  ``replay.page_size`` names another.

A column's JSON path is already its name unless `fields` says otherwise (`declared_spec.field`).
"""

from __future__ import annotations

from typing import Any

PAGE_SIZE_TEMPLATE = "{settings.page_size}"


def key_bounds(column, declared: dict[str, Any]) -> dict[str, Any]:
    """The bounds a column gets beyond the declared ones (`declared`, its field's)."""
    if column.key and column.type in ("string", "text") and "min_length" not in declared:
        return {"min_length": 1}
    return {}


def page_size_param(spec) -> str | None:
    """The parameter a paged replay reads the page size asked from (None: not paged by size)."""
    declared = (spec.replay or {}).get("page_size")
    if declared:
        return declared
    request = spec.request
    if request is None:
        return None
    in_body = (spec.paginator or {}).get("where") == "body"
    sent = (request.body or {}) if in_body else request.query
    return next((name for name, value in sent.items() if value == PAGE_SIZE_TEMPLATE), None)
