"""`upsert(..., history=History(...))`: the stored version of every updated row goes to the history
table in the same transaction (never half a batch), on SQLite, MariaDB and PostgreSQL."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.upsert import History, upsert

REPLACED_AT = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def item(code: int, value: str | None, modified: str | None = "2026-04-20T10:00:00") -> dict:
    return {
        "symbol": "FPT",
        "statement": "balance_sheet",
        "period_type": "quarter",
        "fiscal_year": 2026,
        "fiscal_quarter": 1,
        "item_code": str(code),
        "provider": "vndirect",
        "fiscal_date": date(2026, 3, 31),
        "item_name_vi": None,
        "item_name_en": None,
        "value": None if value is None else Decimal(value),
        "modified_date": modified,
        "extra": None,
    }


def history(run_id: str = "run-2") -> History:
    return History(
        tables.financial_statement_history, {"replaced_at": REPLACED_AT, "run_id": run_id}
    )


def rows(engine, table, order=None):
    with engine.connect() as conn:
        query = select(table).order_by(*(order or table.primary_key.columns))
        return [dict(r) for r in conn.execute(query).mappings()]


def test_a_restated_value_updates_its_row_and_keeps_the_replaced_one(database_url):
    engine = ensure_schema(database_url)
    first = [item(14310, "1576181989047"), item(14320, "12.5"), item(14330, None)]
    assert upsert(engine, tables.financial_statement, first, history=history("run-1")).inserted == 3
    assert rows(engine, tables.financial_statement_history) == []

    restated = [
        item(14310, "1576181989999", "2026-05-02T08:00:00"),
        item(14320, "12.5"),
        item(14330, "7"),
    ]
    result = upsert(engine, tables.financial_statement, restated, history=history())
    assert (result.inserted, result.updated, result.unchanged) == (0, 2, 1)
    stored = {r["item_code"]: r for r in rows(engine, tables.financial_statement)}
    assert stored["14310"]["value"] == Decimal("1576181989999")
    assert stored["14330"]["value"] == Decimal(7)
    kept = rows(
        engine, tables.financial_statement_history, [tables.financial_statement_history.c.id]
    )
    assert [(k["item_code"], k["value"], k["modified_date"], k["run_id"]) for k in kept] == [
        ("14310", Decimal("1576181989047"), "2026-04-20T10:00:00", "run-2"),
        ("14330", None, "2026-04-20T10:00:00", "run-2"),
    ]
    assert {k["replaced_at"] for k in kept} == {REPLACED_AT}
    assert all(k["symbol"] == "FPT" and k["fiscal_quarter"] == 1 for k in kept)

    again = upsert(engine, tables.financial_statement, restated, history=history("run-3"))
    assert (again.updated, again.unchanged) == (0, 3)
    assert len(rows(engine, tables.financial_statement_history)) == 2


def test_a_failing_batch_keeps_neither_its_rows_nor_their_history(database_url):
    engine = ensure_schema(database_url)
    upsert(engine, tables.financial_statement, [item(1, "1"), item(2, "2")])
    broken = [item(1, "10"), {**item(2, "20"), "fiscal_date": None}]  # NOT NULL: the write fails
    with pytest.raises(Exception, match="(?i)null"):
        upsert(engine, tables.financial_statement, broken, history=history())
    with engine.connect() as conn:
        count = select(func.count()).select_from(tables.financial_statement_history)
        assert conn.execute(count).scalar_one() == 0
    assert [r["value"] for r in rows(engine, tables.financial_statement)] == [1, 2]


def test_history_needs_the_classification(sqlite_url):
    engine = ensure_schema(sqlite_url)
    with pytest.raises(ValueError, match="classify"):
        upsert(
            engine, tables.financial_statement, [item(1, "1")], classify=False, history=history()
        )
