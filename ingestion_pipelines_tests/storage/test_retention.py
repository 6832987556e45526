"""Retention, archived first, on SQLite, MariaDB and PostgreSQL: old rows leave the table only
once a verified Parquet file holds exactly them; a failed write or verification deletes nothing;
restore brings them back exactly (and again changes nothing)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from ingestion_pipelines.storage import archive, retention
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import dead_letter, stock_quote, trade_tick
from ingestion_pipelines.storage.upsert import upsert

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
OLD_DAYS = (date(2026, 5, 1), date(2026, 5, 2))


def _ticks() -> list[dict]:
    rows = []
    for n in range(30):
        day = OLD_DAYS[n % 2] if n < 20 else date(2026, 6, 29)
        at = datetime(day.year, day.month, day.day, 3, n, 7, 123456 + n, tzinfo=UTC)
        rows.append(
            {
                "source": "binance",
                "symbol": "BTCUSDT" if n % 3 else "ETHUSDT",
                "trade_id": 10_000_000_000 + n,
                # exact decimals at the column's full scale: a float would lose them
                "price": Decimal("64123.123456789012345678") + n,
                "quantity": Decimal("0.000000000000000001") * (n + 1),
                "side": "buy" if n % 2 else "sell",
                "traded_at": at,
                "received_at": at + timedelta(microseconds=250),
                "extra": {"M": True, "E": 1_700_000_000_123 + n, "note": "ảnh ✓"},
            }
        )
    return rows


def _stored(engine, table, order) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).order_by(*order))]


@pytest.fixture
def engine(database_url):
    engine = ensure_schema(database_url)
    upsert(engine, trade_tick, _ticks())
    return engine


ORDER = (trade_tick.c.source, trade_tick.c.symbol, trade_tick.c.trade_id)


def test_archive_then_delete_then_restore_exactly(engine, tmp_path):
    before = _stored(engine, trade_tick, ORDER)
    old = [r for r in before if r["traded_at"].date() in OLD_DAYS]
    url = str(tmp_path / "archive")

    seen_in_table_when_published: list[int] = []

    def check_published(file) -> None:  # the file exists, the rows are still there
        seen_in_table_when_published.append(len(_stored(engine, trade_tick, ORDER)))
        assert pq.read_metadata(file.url).num_rows == file.rows

    result = retention.retention_pass(
        engine,
        "trade_tick",
        30,
        archive_url=url,
        now=NOW,
        page_rows=4,  # several pages and delete batches per day
        delete_rows=3,
        after_publish=check_published,
    )
    assert [d.day for d in result.days] == list(OLD_DAYS)
    assert result.archived == result.deleted == len(old) == 20
    assert seen_in_table_when_published == [30, 20]
    left = _stored(engine, trade_tick, ORDER)
    assert left == [r for r in before if r not in old]

    # the files hold exactly the deleted rows, exact values included
    fs, root = archive.archive_fs(url)
    archived = []
    for day in OLD_DAYS:
        (path,) = archive.day_files(fs, root, "trade_tick", day)
        assert f"/trade_tick/day={day.isoformat()}/" in path
        table = pq.read_table(path)
        assert str(table.schema.field("price").type) == "decimal128(38, 18)"
        for batch in archive.read_day(fs, root, trade_tick, day):
            archived.extend(batch)
    key = lambda r: (r["source"], r["symbol"], r["trade_id"])  # noqa: E731
    assert sorted(archived, key=key) == sorted(old, key=key)

    # restore puts them back exactly; a second restore changes nothing
    for day in OLD_DAYS:
        archive.restore_day(engine, trade_tick, day, url)
    assert _stored(engine, trade_tick, ORDER) == before
    again = archive.restore_day(engine, trade_tick, OLD_DAYS[0], url)
    assert again.inserted == again.updated == 0 and again.unchanged == 10
    assert _stored(engine, trade_tick, ORDER) == before


def test_row_written_into_an_archived_key_range_stays(engine, tmp_path):
    """Deletes go by key ranges; a row written into a range after its archive was published
    (a late trade of that day) is not in the file, so it must stay: the range's count differs
    and that batch is deleted by its exact keys instead."""
    late = _ticks()[8]  # BTCUSDT on OLD_DAYS[0], between ids 4 and 10 of that day
    assert late["traded_at"].date() == OLD_DAYS[0] and late["symbol"] == "BTCUSDT"
    with engine.begin() as conn:  # not there when the day is archived
        conn.execute(trade_tick.delete().where(trade_tick.c.trade_id == late["trade_id"]))
    published = []

    def write_late(file) -> None:
        if not published:
            upsert(engine, trade_tick, [late])
        published.append(file)

    result = retention.retention_pass(
        engine,
        "trade_tick",
        30,
        archive_url=str(tmp_path / "archive"),
        now=NOW,
        after_publish=write_late,
    )
    assert result.archived == result.deleted == 19
    left = _stored(engine, trade_tick, ORDER)
    assert [r["trade_id"] for r in left if r["traded_at"] < NOW - timedelta(days=30)] == [
        late["trade_id"]
    ]
    assert len(left) == 11


def test_failed_verification_deletes_nothing(engine, tmp_path, monkeypatch):
    url = str(tmp_path / "archive")
    real = archive.verify_file

    def lossy(fs, path, key_columns):  # the storage handed back one row short
        rows, digest = real(fs, path, key_columns)
        return rows - 1, digest

    monkeypatch.setattr(archive, "verify_file", lossy)
    with pytest.raises(archive.ArchiveError, match="not published"):
        retention.retention_pass(engine, "trade_tick", 30, archive_url=url, now=NOW)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(trade_tick)).scalar() == 30
    fs, root = archive.archive_fs(url)
    assert archive.day_files(fs, root, "trade_tick", OLD_DAYS[0]) == []
    assert not [p for p in (tmp_path / "archive").rglob("*") if p.is_file()]


def test_failed_write_deletes_nothing(engine, tmp_path):
    blocked = tmp_path / "archive"
    blocked.mkdir()
    (blocked / "trade_tick").write_text("a file where the table's folder should be")
    with pytest.raises((archive.ArchiveError, OSError)):
        retention.retention_pass(engine, "trade_tick", 30, archive_url=str(blocked), now=NOW)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(trade_tick)).scalar() == 30


def test_value_that_does_not_fit_exactly_is_refused_not_rounded(sqlite_url, tmp_path):
    engine = ensure_schema(sqlite_url)
    row = _ticks()[0] | {"price": Decimal("1.0000000000000000001")}  # 19 decimals
    upsert(engine, trade_tick, [row])
    with pytest.raises(archive.ArchiveError, match="price"):
        retention.retention_pass(engine, "trade_tick", 30, archive_url=str(tmp_path / "a"), now=NOW)
    with engine.connect() as conn:
        assert conn.execute(select(trade_tick.c.price)).scalar() == row["price"]


def test_time_keyed_and_json_tables(sqlite_url, tmp_path):
    """stock_quote (a time in its key) and dead_letter (JSON `context`, autoincrement id)."""
    engine = ensure_schema(sqlite_url)
    at = datetime(2026, 1, 2, 2, 15, 0, 500, tzinfo=UTC)
    quote = {"symbol": "FPT", "quoted_at": at, "last_price": Decimal("123.45"), "extra": {}}
    upsert(engine, stock_quote, [quote, quote | {"quoted_at": NOW}])
    letter = {
        "worker_id": "ssi_iboard",
        "received_at": at,
        "reason": "bad frame",
        "payload": "S#FPT|x",
        "context": {"n": 1},
        "fingerprint": "f" * 64,
    }
    with engine.begin() as conn:
        conn.execute(dead_letter.insert(), [letter])
    url = str(tmp_path / "archive")
    before_quotes = _stored(engine, stock_quote, [stock_quote.c.quoted_at])
    before_letters = _stored(engine, dead_letter, [dead_letter.c.id])
    pass_ = retention.retention_pass(
        engine, "stock_quote", 7, archive_url=url, now=NOW, pause_ratio=0.5
    )
    assert pass_.deleted == 1
    assert retention.retention_pass(engine, "dead_letter", 7, archive_url=url, now=NOW).deleted
    assert len(_stored(engine, stock_quote, [stock_quote.c.quoted_at])) == 1
    assert _stored(engine, dead_letter, [dead_letter.c.id]) == []
    archive.restore_day(engine, stock_quote, at.date(), url)
    archive.restore_day(engine, dead_letter, at.date(), url)
    assert _stored(engine, stock_quote, [stock_quote.c.quoted_at]) == before_quotes
    assert _stored(engine, dead_letter, [dead_letter.c.id]) == before_letters


def test_policies_from_env():
    policies = retention.policies_from_env("trade_tick=7, execution_log=off")
    assert policies["trade_tick"] == 7 and "execution_log" not in policies
    with pytest.raises(archive.ArchiveError, match="fund"):
        retention.policies_from_env("fund=3")


def test_lower_priority_raises_niceness_and_never_lowers_it():
    """The pass's process yields the cores to live writers (in a child: niceness is for good)."""
    code = (
        "import os; from ingestion_pipelines.storage.retention import lower_priority as p; "
        "n = os.nice(0); print(n, p(n + 3), p(0), os.nice(0))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    start, raised, kept, now = map(int, out.stdout.split())
    assert raised == kept == now == min(start + 3, 19)


def test_postgres_pages_start_at_the_previous_key_not_at_the_first(postgres_url):
    """PostgreSQL applies the OR spelling of `key > last` as a filter on an index scan from the
    key's first row, so each page re-read every row before it; the row comparison is a range."""
    from sqlalchemy import text

    engine = ensure_schema(postgres_url)
    upsert(engine, trade_tick, _ticks())
    keys = [trade_tick.c[n] for n in retention.key_columns(trade_tick)]
    last = tuple(_ticks()[4][k.name] for k in keys)
    query = select(trade_tick).where(retention._after(keys, last, "postgresql")).order_by(*keys)
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        conn.execute(text("SET enable_seqscan = off"))  # the plan a big table gets
        plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))
        after = conn.execute(query).all()
    assert "Index Cond: (ROW(" in plan and "Filter" not in plan, plan
    keyed = sorted(tuple(r[k.name] for k in keys) for r in _ticks())
    assert [tuple(getattr(r, k.name) for k in keys) for r in after] == [
        k for k in keyed if k > last
    ]
