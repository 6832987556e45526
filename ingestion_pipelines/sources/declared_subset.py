"""A subset of a table's `for_each` rows named by a setting (``request.for_each.only``)::

    settings:
      tickers: {default: "", description: "only these stocks (comma-separated); empty: every one"}
    request:
      for_each: {table: stock, columns: [symbol], only: tickers}

An empty setting means every row of the table; otherwise only the rows whose first `for_each`
column is one of the listed values (a comma-separated string, as an environment variable gives
it, or a list), each read as that column's type (``"20"`` is fund 20 of a BIGINT column).

``where`` keeps only the rows with fixed column values, whatever the settings say
(``for_each: {table: stock, columns: [symbol], where: {status: listed}}``: listed stocks only).
"""

from __future__ import annotations

from typing import Any

from ingestion_pipelines.sources.base import SourceError


def subset_values(for_each, settings) -> list[str]:
    """The values the `only` setting lists ([] when there is no `only` or it is empty)."""
    if for_each.only is None:
        return []
    if not hasattr(settings, for_each.only):
        raise SourceError(f"for_each: no setting {for_each.only!r} (its `only`)")
    value = getattr(settings, for_each.only)
    items = value if isinstance(value, list | tuple) else str(value or "").split(",")
    return [str(v).strip() for v in items if str(v).strip()]


def subset_clauses(for_each, table, settings) -> list[Any]:
    """The WHERE clauses keeping the rows `where` and the `only` setting name (none: every row)."""
    unknown = sorted(set(for_each.where) - set(table.c.keys()))
    if unknown:
        raise SourceError(f"for_each: `where` names no column of {table.name}: {unknown}")
    fixed = [table.c[name] == value for name, value in for_each.where.items()]
    values = subset_values(for_each, settings)
    if not values:
        return fixed
    column = table.c[for_each.columns[0]]
    try:
        typed = [column.type.python_type(v) for v in values]
    except (TypeError, ValueError):
        raise SourceError(
            f"for_each: setting {for_each.only!r} = {values!r} is not a list of {column.name}"
        ) from None
    return [*fixed, column.in_(typed)]
