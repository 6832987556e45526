"""Deleting exactly the rows a published archive file holds, in short transactions.

The file's keys are in the order they were read (the database's key order), so a batch of them
is a few runs sharing every key column but the last (for `trade_tick`: one (source, symbol) and
a span of trade ids). Each batch is deleted as those key ranges, within the archived day, in one
transaction, and kept only when the rows deleted are exactly as many as the file holds there:
every archived key lies in its range, so an equal count means the ranges held no other row. A
row written into a range since it was archived makes the count differ: the transaction is rolled
back and that batch is deleted by its exact keys instead (`prefix = ... AND last IN (...)`).
Ranges cost the database one index range per run and Python nothing per row; exact keys cost a
bound parameter per row (and MariaDB plans a row-value `IN` list at about 1 ms a key, hence the
prefix form). On MariaDB the deletes run at READ COMMITTED, which locks the rows deleted and no
gaps between keys (see `delete_key_batch`), so inserts next to an archived range never wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from loguru import logger
from sqlalchemy import Table, and_, delete, or_
from sqlalchemy.engine import Engine

Run = tuple[tuple, Any, Any]  # (values of the key's other columns, first last-column, last one)


def key_runs(batch: pa.RecordBatch, names: Sequence[str]) -> list[Run]:
    """The runs of consecutive keys of `batch` sharing all key columns but the last, each with
    its first and last value of the last column (found with Arrow kernels, not per row)."""
    *prefix, last = names
    rows = batch.num_rows
    starts = [0]
    if prefix and rows > 1:
        changed = None
        for name in prefix:
            column = batch.column(name)
            differs = pc.not_equal(column.slice(1), column.slice(0, rows - 1))
            changed = differs if changed is None else pc.or_(changed, differs)
        starts += [i + 1 for i in pc.indices_nonzero(changed).to_pylist()]
    ends = [*starts[1:], rows]
    lasts = batch.column(last)
    return [
        (tuple(batch.column(p)[s].as_py() for p in prefix), lasts[s].as_py(), lasts[e - 1].as_py())
        for s, e in zip(starts, ends, strict=True)
    ]


def _ranges(keys: Sequence, runs: list[Run]):
    *prefix, last = keys
    clauses = [
        and_(*(c == v for c, v in zip(prefix, head, strict=True)), last.between(low, high))
        for head, low, high in runs
    ]
    return clauses[0] if len(clauses) == 1 else or_(*clauses)


def _exact_keys(keys: Sequence, batch: list[tuple]):
    """Rows whose key is one of `batch` (in key order): per run of keys sharing all but the last
    column, `prefix = ... AND last IN (...)`, which every database plans as key lookups."""
    *prefix, last = keys
    if not prefix:
        return last.in_([k[0] for k in batch])
    groups = [
        and_(*(c == v for c, v in zip(prefix, head, strict=True)), last.in_([k[-1] for k in run]))
        for head, run in ((h, list(r)) for h, r in groupby(batch, key=lambda k: k[:-1]))
    ]
    return groups[0] if len(groups) == 1 else or_(*groups)


def delete_key_batch(engine: Engine, table: Table, window, batch: pa.RecordBatch) -> int:
    """Delete the rows of `table` within `window` whose keys are `batch` (a key batch of an
    archive file): by key ranges when they hold exactly those rows, else by exact keys."""
    names = list(batch.schema.names)
    keys = [table.c[name] for name in names]
    expected = batch.num_rows
    with engine.connect() as conn:
        if conn.dialect.name in ("mysql", "mariadb"):
            # InnoDB's REPEATABLE READ locks the gap before each key a range delete scans: the gap
            # before an old run's first key is where the previous key's newest rows are inserted
            # (the sidecar's next trade ids), so writers would wait. READ COMMITTED locks rows only.
            conn = conn.execution_options(isolation_level="READ COMMITTED")
        with conn.begin() as transaction:
            deleted = conn.execute(
                delete(table).where(window, _ranges(keys, key_runs(batch, names)))
            ).rowcount
            if deleted == expected:
                return deleted
            transaction.rollback()
        logger.info(
            "retention {}: a key range held {} rows for {} archived keys (rows written since);"
            " deleting by exact keys",
            table.name,
            deleted,
            expected,
        )
        exact = list(zip(*(batch.column(n).to_pylist() for n in names), strict=True))
        with conn.begin():
            return conn.execute(delete(table).where(window, _exact_keys(keys, exact))).rowcount
