"""What a declared source's standard tests put in place before it runs (``expect.seed`` in its
defs.yaml): the rows of the table its ``request.for_each`` walks, or the worker that fills it::

    expect:
      seed:
        stock:                                   # rows inserted into `stock`
          - {symbol: ABB, exchange: UPCOM, name: ABB, type: STOCK, status: listed}
    expect:
      seed: {worker: vn_stocks}                  # that worker run first, on its own replay

A `for_each` source without a seed reads an empty table: no request, nothing stored, so its
standard tests say so rather than pass on nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import insert

from ingestion_pipelines.storage import tables


def seed_rows(engine, rows_by_table: dict[str, list[dict[str, Any]]]) -> None:
    """Insert `rows_by_table` ({table name: rows}) in one transaction."""
    with engine.begin() as conn:
        for name, rows in rows_by_table.items():
            table = tables.metadata.tables.get(name)
            if table is None:
                raise ValueError(f"expect.seed: no table {name!r}")
            # one set of columns for all rows: an executemany takes the first row's keys
            names = {name for row in rows for name in row}
            if rows:
                conn.execute(insert(table), [{n: row.get(n) for n in names} for row in rows])


def seed_of(source) -> Callable[[Any], None] | None:
    """The seed of a declared source's standard tests (`crawler` in, nothing out), or None."""
    seed = dict((source.spec.expect or {}).get("seed") or {})
    if not seed:
        return None
    worker = seed.pop("worker", None)

    def run_seed(crawler) -> None:
        from ingestion_pipelines.storage.engines import ensure_schema

        if worker:
            crawler.run(worker)
        if seed:
            seed_rows(ensure_schema(crawler.database_url), seed)

    return run_seed
