"""trade_tick's UTC days as partitions on MariaDB (migration 0032, `storage.partitions`): an
archived day leaves the table as a whole partition only when the partition holds exactly the
archived rows; a late row of that day, a pass that died mid-way, days ahead and days in the
catch-alls lose nothing. SQLite is not partitioned and deletes by rows (PostgreSQL's partitions:
test_partitions_pg)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from ingestion_pipelines.storage import archive, partitions, retention
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.migrate import downgrade, upgrade
from ingestion_pipelines.storage.tables import trade_tick
from ingestion_pipelines.storage.upsert import upsert

DAYS = (date(2026, 5, 1), date(2026, 5, 2), date(2026, 5, 3))
NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)


def _tick(n: int, day: date, symbol: str = "BTCUSDT") -> dict:
    at = datetime(day.year, day.month, day.day, 1, 0, tzinfo=UTC) + timedelta(seconds=n)
    return {
        "source": "binance",
        "symbol": symbol,
        "trade_id": n,
        "price": Decimal("64123.123456789012345678"),
        "quantity": Decimal("0.000000000000000001") * (n + 1),
        "side": "buy",
        "traded_at": at,
        "received_at": at,
        "extra": {"n": n},
    }


def _ticks() -> list[dict]:
    return [_tick(n, DAYS[n % 3], "ETHUSDT" if n % 2 else "BTCUSDT") for n in range(60)]


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(trade_tick)).scalar_one()


def _layout(engine) -> partitions.Layout:
    with engine.connect() as conn:
        return partitions.layout(conn, "trade_tick")


def _all(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(trade_tick).order_by(trade_tick.c.trade_id))]


@pytest.fixture
def engine(mariadb_url):
    engine = ensure_schema(mariadb_url)
    assert partitions.ensure_day_partitions(engine, trade_tick, DAYS[0], DAYS[-1]) == list(DAYS)
    upsert(engine, trade_tick, _ticks())
    return engine


def test_migration_partitions_by_day_from_today_and_ahead(mariadb_url):
    engine = ensure_schema(mariadb_url)
    found = _layout(engine)
    today = datetime.now(UTC).date()
    assert found.names[0] == partitions.OLD and found.names[-1] == partitions.FUTURE
    assert sorted(found.days) == [today + timedelta(days=n) for n in range(15)]
    assert found.old_until == today and found.future_from == today + timedelta(days=15)
    # a row of any time has a partition: long ago, today, far ahead
    rows = [_tick(1, date(2001, 1, 1)), _tick(2, today), _tick(3, date(2099, 1, 1))]
    upsert(engine, trade_tick, rows)
    assert _count(engine) == 3
    # the days ahead move on with the clock; a busy catch-all is not split
    later = today + timedelta(days=20)
    made = partitions.ensure_ahead(engine, trade_tick, later)
    assert made == [today + timedelta(days=n) for n in range(15, 35)]
    assert _layout(engine).future_from == later + timedelta(days=15)
    assert _count(engine) == 3


def test_downgrade_restores_the_old_key_and_no_partitions(mariadb_url):
    engine = ensure_schema(mariadb_url)
    upsert(engine, trade_tick, [_tick(1, DAYS[0])])
    assert downgrade(mariadb_url, "0031_provider_observation") == "0031_provider_observation"
    assert _layout(engine) is None
    with engine.connect() as conn:
        key = conn.execute(
            text(
                "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) FROM"
                " information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND"
                " TABLE_NAME = 'trade_tick' AND INDEX_NAME = 'PRIMARY'"
            )
        ).scalar_one()
    assert key == "source,symbol,trade_id"
    upgrade(mariadb_url)
    assert _layout(engine) is not None and _count(engine) == 1


def test_archived_days_leave_as_partitions_exactly(engine, tmp_path):
    before = _all(engine)
    url = str(tmp_path / "archive")
    result = retention.retention_pass(engine, "trade_tick", 30, archive_url=url, now=NOW)
    assert [d.day for d in result.days] == list(DAYS)
    assert all(d.by_partition for d in result.days)
    assert result.archived == result.deleted == 60 and _count(engine) == 0
    found = _layout(engine)
    assert not set(DAYS) & set(found.days)  # merged into p_old, which now ends after them
    assert found.old_until > DAYS[-1]
    with engine.connect() as conn:  # no copy left behind
        assert not conn.execute(text("SHOW TABLES LIKE 'trade_tick_retiring'")).all()
    for day in DAYS:
        archive.restore_day(engine, trade_tick, day, url)
    assert _all(engine) == before


def test_a_late_row_of_an_archived_day_stays(engine, tmp_path):
    """A trade of a day written after its archive was published is not in the file: the
    partition holds one row more, so it is exchanged back and the archived rows are deleted by
    key; the late row stays, for the next pass."""
    late = _tick(1000, DAYS[0])

    def write_late(file) -> None:
        if "day=2026-05-01" in file.url:
            upsert(engine, trade_tick, [late])

    result = retention.retention_pass(
        engine, "trade_tick", 30, archive_url=str(tmp_path / "a"), now=NOW, after_publish=write_late
    )
    assert [d.by_partition for d in result.days] == [False, True, True]
    assert result.archived == result.deleted == 60
    with engine.connect() as conn:
        left = conn.execute(select(trade_tick.c.trade_id)).scalars().all()
    assert left == [1000]
    again = retention.retention_pass(
        engine, "trade_tick", 30, archive_url=str(tmp_path / "a"), now=NOW
    )
    assert again.archived == again.deleted == 1 and _count(engine) == 0


def test_rows_written_while_the_partition_is_out_are_kept(engine, tmp_path, monkeypatch):
    """After the exchange a writer's row of a retired day lands in the emptied partition: it
    must survive the folding of that partition into p_old."""
    real = partitions.merge_retired
    late = _tick(2000, DAYS[1])

    def fold_after_a_late_write(engine, table, before):
        upsert(engine, trade_tick, [late])
        return real(engine, table, before)

    monkeypatch.setattr(partitions, "merge_retired", fold_after_a_late_write)
    result = retention.retention_pass(engine, "trade_tick", 30, archive_url=str(tmp_path), now=NOW)
    assert result.deleted == 60 and all(d.by_partition for d in result.days)
    assert _layout(engine).names[1] not in {partitions.partition_name(d) for d in DAYS}
    with engine.connect() as conn:
        assert conn.execute(select(trade_tick.c.trade_id)).scalars().all() == [2000]


def test_emptied_partitions_are_not_folded_into_a_full_p_old(engine, tmp_path, monkeypatch):
    """Folding copies the rows in p_old while writers wait: with more than SPLIT_MAX_ROWS there
    (written during the pass) the emptied day partitions stay as they are, nothing is lost, and
    the next pass, having deleted those rows, folds them."""
    real = partitions.merge_retired
    late = [_tick(3000 + n, date(2026, 4, 1)) for n in range(6)]

    def fold_after_late_writes(engine, table, before):
        upsert(engine, trade_tick, late)
        return real(engine, table, before)

    monkeypatch.setattr(partitions, "SPLIT_MAX_ROWS", 5)
    monkeypatch.setattr(partitions, "merge_retired", fold_after_late_writes)
    result = retention.retention_pass(engine, "trade_tick", 30, archive_url=str(tmp_path), now=NOW)
    assert all(d.by_partition for d in result.days) and result.deleted == 60
    assert set(DAYS) <= set(_layout(engine).days)  # emptied, not folded
    assert _count(engine) == 6
    late.clear()
    result = retention.retention_pass(engine, "trade_tick", 30, archive_url=str(tmp_path), now=NOW)
    assert [(d.day, d.by_partition) for d in result.days] == [(date(2026, 4, 1), False)]
    assert _count(engine) == 0
    assert not set(DAYS) & set(_layout(engine).days)  # folded now


def test_a_copy_left_by_a_dead_pass_is_put_back(engine, tmp_path):
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("CREATE TABLE trade_tick_retiring LIKE trade_tick"))
        conn.execute(text("ALTER TABLE trade_tick_retiring REMOVE PARTITIONING"))
        conn.execute(
            text(
                "ALTER TABLE trade_tick EXCHANGE PARTITION d20260502 WITH TABLE trade_tick_retiring"
            )
        )  # noqa: E501
    assert _count(engine) == 40  # the day is out of the table, in the copy
    assert partitions.put_back_leftover(engine, trade_tick) == 20
    assert _count(engine) == 60


def test_days_in_a_catch_all_are_deleted_by_rows(mariadb_url, tmp_path):
    engine = ensure_schema(mariadb_url)  # May 2026 is before the first day partition: p_old
    upsert(engine, trade_tick, _ticks())
    result = retention.retention_pass(engine, "trade_tick", 30, archive_url=str(tmp_path), now=NOW)
    assert not any(d.by_partition for d in result.days)
    assert result.archived == result.deleted == 60 and _count(engine) == 0


def test_other_databases_are_not_partitioned(sqlite_url, tmp_path):
    engine = ensure_schema(sqlite_url)
    assert _layout(engine) is None
    assert partitions.ensure_day_partitions(engine, trade_tick, DAYS[0], DAYS[-1]) == []
    upsert(engine, trade_tick, _ticks())
    result = retention.retention_pass(engine, "trade_tick", 30, archive_url=str(tmp_path), now=NOW)
    assert not any(d.by_partition for d in result.days)
    assert result.archived == result.deleted == 60 and _count(engine) == 0
