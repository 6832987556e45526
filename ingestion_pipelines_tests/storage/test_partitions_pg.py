"""trade_tick's UTC days as partitions on PostgreSQL (migration 0032, `storage.partitions_pg`):
an archived day is detached and dropped only when it holds exactly the archived rows; a late row
of that day (before or after the detach), a pass that died mid-way, days ahead and days in the
default partition lose nothing, and no insert ever lacks a partition."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, inspect, select, text

from ingestion_pipelines.storage import archive, partitions, partitions_pg, retention
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.migrate import downgrade, upgrade
from ingestion_pipelines.storage.schema_drift import schema_drift
from ingestion_pipelines.storage.tables import trade_tick
from ingestion_pipelines.storage.upsert import upsert

DAYS = (date(2026, 5, 1), date(2026, 5, 2), date(2026, 5, 3))
NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
DEFAULT = "trade_tick_default"
OLD_KEY = ["source", "symbol", "trade_id"]


def _tick(n: int, day: date, symbol: str = "BTCUSDT", price: str = "64123.123456789012345678"):
    at = datetime(day.year, day.month, day.day, 1, 0, tzinfo=UTC) + timedelta(seconds=n)
    return {
        "source": "binance",
        "symbol": symbol,
        "trade_id": n,
        "price": Decimal(price),
        "quantity": Decimal("0.000000000000000001") * (n + 1),
        "side": "buy",
        "traded_at": at,
        "received_at": at,
        "extra": {"n": n},
    }


def _ticks() -> list[dict]:
    return [_tick(n, DAYS[n % 3], "ETHUSDT" if n % 2 else "BTCUSDT") for n in range(60)]


def _rows(engine, relation: str = "trade_tick") -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {relation}")).scalar_one()


def _exists(engine, relation: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT to_regclass(:t)"), {"t": relation}).scalar() is not None


def _layout(engine) -> partitions.Layout:
    with engine.connect() as conn:
        return partitions.layout(conn, "trade_tick")


def _all(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(trade_tick).order_by(trade_tick.c.trade_id))]


def _ids(engine) -> list[int]:
    with engine.connect() as conn:
        query = select(trade_tick.c.trade_id).order_by(trade_tick.c.trade_id)
        return conn.execute(query).scalars().all()


def _detach_by_hand(engine, day: date) -> None:
    """What a pass that died after its detach leaves behind."""
    with engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE trade_tick DETACH PARTITION trade_tick_d{day:%Y%m%d}"))
        conn.execute(text(f"ALTER TABLE trade_tick_d{day:%Y%m%d} RENAME TO trade_tick_retiring"))


@pytest.fixture
def engine(postgres_url):
    engine = ensure_schema(postgres_url)
    assert partitions.ensure_day_partitions(engine, trade_tick, DAYS[0], DAYS[-1]) == list(DAYS)
    upsert(engine, trade_tick, _ticks())
    return engine


def test_migration_partitions_by_day_from_today_and_ahead(postgres_url, monkeypatch):
    engine = ensure_schema(postgres_url)
    found = _layout(engine)
    today = datetime.now(UTC).date()
    assert found.names[-1] == DEFAULT and len(found.names) == 16  # no _old: no rows to keep
    assert sorted(found.days) == [today + timedelta(days=n) for n in range(15)]
    assert found.old_until == today and found.future_from == today + timedelta(days=15)
    with engine.connect() as conn:
        key = inspect(conn).get_pk_constraint("trade_tick")
    assert key["name"] == "pk_trade_tick"
    assert key["constrained_columns"] == ["source", "symbol", "trade_id", "traded_at"]
    assert schema_drift(postgres_url) == []  # the partitions are no tables to the comparison
    # a row of any time has a partition: long ago, today, far ahead (the first and the last in
    # the default partition)
    rows = [_tick(1, date(2001, 1, 1)), _tick(2, today), _tick(3, date(2099, 1, 1))]
    upsert(engine, trade_tick, rows)
    assert _rows(engine) == 3 and _rows(engine, DEFAULT) == 2
    # the days ahead move on with the clock
    later = today + timedelta(days=20)
    made = partitions.ensure_ahead(engine, trade_tick, later)
    assert made == [today + timedelta(days=n) for n in range(15, 35)]
    assert _layout(engine).future_from == later + timedelta(days=15)
    # a past day with rows in the default partition: they move into its new partition
    assert partitions.ensure_day_partitions(
        engine, trade_tick, date(2001, 1, 1), date(2001, 1, 1)
    ) == [date(2001, 1, 1)]
    assert _rows(engine, "trade_tick_d20010101") == 1 and _rows(engine, DEFAULT) == 1
    # ... unless they are too many to move under the default partition's lock
    monkeypatch.setattr(partitions_pg, "MOVE_MAX_ROWS", 0)
    day = date(2099, 1, 1)
    assert partitions.ensure_day_partitions(engine, trade_tick, day, day) == []
    assert day not in _layout(engine).days and _rows(engine, DEFAULT) == 1
    assert _rows(engine) == 3
    assert schema_drift(postgres_url) == []


def test_downgrade_restores_the_old_key_and_no_partitions(postgres_url):
    engine = ensure_schema(postgres_url)
    upsert(engine, trade_tick, [_tick(1, DAYS[0]), _tick(2, date(2001, 1, 1))])
    assert downgrade(postgres_url, "0031_provider_observation") == "0031_provider_observation"
    assert _layout(engine) is None
    with engine.connect() as conn:
        key = inspect(conn).get_pk_constraint("trade_tick")
        kind = conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'trade_tick'"))
        assert kind.scalar_one() == "r"
        assert conn.execute(text("SELECT COUNT(*) FROM pg_inherits")).scalar_one() == 0
    assert key["name"] == "pk_trade_tick" and key["constrained_columns"] == OLD_KEY
    assert not _exists(engine, DEFAULT) and _rows(engine) == 2
    # upgraded again: the days from the oldest row's (at most 400 days back), older rows in _old
    upgrade(postgres_url)
    found = _layout(engine)
    today = datetime.now(UTC).date()
    assert found.names[0] == "trade_tick_old" and found.names[-1] == DEFAULT
    assert found.old_until == today - timedelta(days=400)  # the 2001 row is older
    assert DAYS[0] in found.days
    assert found.future_from == today + timedelta(days=15)
    assert _rows(engine) == 2 and _rows(engine, "trade_tick_old") == 1
    assert _rows(engine, DEFAULT) == 0
    assert schema_drift(postgres_url) == []


def test_archived_days_leave_as_partitions_exactly(engine, tmp_path):
    before = _all(engine)
    url = str(tmp_path / "archive")
    result = retention.retention_pass(engine, "trade_tick", 30, archive_url=url, now=NOW)
    assert [d.day for d in result.days] == list(DAYS)
    assert all(d.by_partition for d in result.days)
    assert result.archived == result.deleted == 60 and _rows(engine) == 0
    assert not set(DAYS) & set(_layout(engine).days)
    for day in DAYS:
        assert not _exists(engine, partitions_pg.day_table("trade_tick", day))
    assert not _exists(engine, "trade_tick_retiring")
    # the days have no partition now: restored rows land in the default partition
    for day in DAYS:
        archive.restore_day(engine, trade_tick, day, url)
    assert _all(engine) == before and _rows(engine, DEFAULT) == 60


def test_a_late_row_of_an_archived_day_stays(engine, tmp_path):
    """A trade of a day written after its archive was published is not in the file: the
    partition holds one row more, so it stays and the archived rows are deleted by key; the
    late row stays, for the next pass, which then retires the partition."""
    late = _tick(1000, DAYS[0])

    def write_late(file) -> None:
        if "day=2026-05-01" in file.url:
            upsert(engine, trade_tick, [late])

    result = retention.retention_pass(
        engine, "trade_tick", 30, archive_url=str(tmp_path / "a"), now=NOW, after_publish=write_late
    )
    assert [d.by_partition for d in result.days] == [False, True, True]
    assert result.archived == result.deleted == 60
    assert _ids(engine) == [1000] and DAYS[0] in _layout(engine).days
    again = retention.retention_pass(
        engine, "trade_tick", 30, archive_url=str(tmp_path / "a"), now=NOW
    )
    assert again.archived == again.deleted == 1 and _rows(engine) == 0
    assert [d.by_partition for d in again.days] == [True]


def test_rows_written_around_the_detach_are_kept(engine, tmp_path, monkeypatch):
    """A row written just before the detach makes the detached table hold one row more than
    the archive: it is attached again (with the day's rows written into the default partition
    while it was out) and the archived rows are deleted by key. A row written just after the
    detach lands in the default partition and stays there."""
    real = partitions_pg._detach
    before, out_1, out_2 = _tick(2000, DAYS[1]), _tick(2001, DAYS[1]), _tick(3000, DAYS[0])

    def detach_among_writers(engine_, table_name, name):
        if name.endswith("20260502"):
            upsert(engine, trade_tick, [before])
        detached = real(engine_, table_name, name)
        if name.endswith("20260502"):
            upsert(engine, trade_tick, [out_1])
        if name.endswith("20260501"):
            upsert(engine, trade_tick, [out_2])
        return detached

    monkeypatch.setattr(partitions_pg, "_detach", detach_among_writers)
    result = retention.retention_pass(engine, "trade_tick", 30, archive_url=str(tmp_path), now=NOW)
    assert [d.by_partition for d in result.days] == [True, False, True]
    assert result.archived == result.deleted == 60
    assert _ids(engine) == [2000, 2001, 3000]
    found = _layout(engine)
    assert DAYS[1] in found.days and DAYS[0] not in found.days and DAYS[2] not in found.days
    assert _rows(engine, "trade_tick_d20260502") == 2 and _rows(engine, DEFAULT) == 1
    assert not _exists(engine, "trade_tick_retiring")
    monkeypatch.setattr(partitions_pg, "_detach", real)
    again = retention.retention_pass(
        engine, "trade_tick", 30, archive_url=str(tmp_path / "b"), now=NOW
    )
    assert [d.by_partition for d in again.days] == [False, True]
    assert again.archived == again.deleted == 3 and _rows(engine) == 0


def test_a_day_whose_detach_waits_too_long_is_deleted_by_rows(engine, tmp_path, monkeypatch):
    """A long transaction reading the table: the detach would queue every writer behind it, so it
    gives up after the lock timeout and the archived rows are deleted by key instead."""
    monkeypatch.setattr(partitions_pg, "LOCK_TIMEOUT", "100ms")
    monkeypatch.setattr(partitions_pg, "LOCK_TRIES", 2)
    with engine.connect() as reader:
        assert reader.execute(select(func.count()).select_from(trade_tick)).scalar_one() == 60
        result = retention.retention_pass(
            engine, "trade_tick", 30, archive_url=str(tmp_path), now=NOW
        )
        assert not any(d.by_partition for d in result.days)
        assert result.archived == result.deleted == 60
    assert _rows(engine) == 0 and set(DAYS) <= set(_layout(engine).days)
    assert not _exists(engine, "trade_tick_retiring")


def test_a_table_left_by_a_dead_pass_is_put_back(engine):
    """Detached and renamed, then the pass died: the next one attaches it again, with the rows
    of that day written meanwhile (a key written again keeps its newer values)."""
    _detach_by_hand(engine, DAYS[1])
    assert _rows(engine) == 40  # the day is out of the table
    upsert(engine, trade_tick, [_tick(1, DAYS[1], "ETHUSDT", price="1.5"), _tick(5000, DAYS[1])])
    assert _rows(engine, DEFAULT) == 2
    assert partitions.put_back_leftover(engine, trade_tick) == 20
    assert _rows(engine) == 61 and _rows(engine, DEFAULT) == 0
    assert _rows(engine, "trade_tick_d20260502") == 21
    assert DAYS[1] in _layout(engine).days and not _exists(engine, "trade_tick_retiring")
    with engine.connect() as conn:
        price = conn.execute(select(trade_tick.c.price).where(trade_tick.c.trade_id == 1))
        assert price.scalar_one() == Decimal("1.5")
    assert partitions.put_back_leftover(engine, trade_tick) == 0


def test_a_left_table_whose_day_is_a_partition_again_is_inserted_back(engine):
    _detach_by_hand(engine, DAYS[1])
    assert partitions.ensure_day_partitions(engine, trade_tick, DAYS[1], DAYS[1]) == [DAYS[1]]
    upsert(engine, trade_tick, [_tick(1, DAYS[1], "ETHUSDT", price="1.5")])
    assert partitions.put_back_leftover(engine, trade_tick) == 19  # the key written again stays
    assert _rows(engine) == 60 and _rows(engine, "trade_tick_d20260502") == 20
    assert not _exists(engine, "trade_tick_retiring")
    with engine.connect() as conn:
        price = conn.execute(select(trade_tick.c.price).where(trade_tick.c.trade_id == 1))
        assert price.scalar_one() == Decimal("1.5")


def test_days_in_the_default_partition_are_deleted_by_rows(postgres_url, tmp_path):
    engine = ensure_schema(postgres_url)  # May 2026 is before the first day partition
    upsert(engine, trade_tick, _ticks())
    assert _rows(engine, DEFAULT) == 60
    result = retention.retention_pass(engine, "trade_tick", 30, archive_url=str(tmp_path), now=NOW)
    assert not any(d.by_partition for d in result.days)
    assert result.archived == result.deleted == 60 and _rows(engine) == 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(trade_tick)).scalar_one() == 0
