from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select

from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.upsert import upsert


def navs(n: int, fund_id: int = 7, bump: Decimal = Decimal(0)):
    start = date(2015, 1, 1)
    return [
        {
            "fund_id": fund_id,
            "nav_date": start + timedelta(days=i),
            "nav": Decimal("10000.25") + i + bump,
        }
        for i in range(n)
    ]


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_counts_inserted_updated_unchanged_and_is_idempotent(database_url):
    engine = ensure_schema(database_url)
    rows = navs(2500)
    first = upsert(engine, tables.fund_nav, rows, batch_size=1000)
    assert (first.inserted, first.updated, first.unchanged) == (2500, 0, 0)

    again = upsert(engine, tables.fund_nav, rows, batch_size=1000)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2500)

    changed = [dict(r) for r in rows]
    changed[3]["nav"] += Decimal("0.000001")
    changed[2000]["nav"] = Decimal("1.5")
    extra = navs(2, fund_id=8)
    mixed = upsert(engine, tables.fund_nav, changed + extra, batch_size=1000)
    assert (mixed.inserted, mixed.updated, mixed.unchanged) == (2, 2, 2498)
    assert count(engine, tables.fund_nav) == 2502
    with engine.connect() as conn:
        stored = conn.execute(
            select(tables.fund_nav.c.nav).where(
                tables.fund_nav.c.fund_id == 7, tables.fund_nav.c.nav_date == rows[3]["nav_date"]
            )
        ).scalar_one()
    assert stored == Decimal("10003.250001")


def test_datetime_keys_match_whatever_the_input_timezone(database_url):
    engine = ensure_schema(database_url)
    captured = datetime(2026, 11, 23, 3, 0, 0, 500000, tzinfo=UTC)
    row = {
        "coin_id": "bitcoin",
        "captured_at": captured,
        "symbol": "btc",
        "name": "Bitcoin",
        "price_usd": Decimal("91234.12"),
        "market_cap_usd": Decimal("1800000000000"),
        "volume_24h_usd": None,
    }
    assert upsert(engine, tables.crypto_market_snapshot, [row]).inserted == 1
    same_instant = dict(row, captured_at=captured.astimezone(datetime.now().astimezone().tzinfo))
    result = upsert(engine, tables.crypto_market_snapshot, [same_instant])
    assert (result.inserted, result.unchanged) == (0, 1)


def test_duplicate_keys_in_one_call_keep_the_last_row(database_url):
    engine = ensure_schema(database_url)
    rows = navs(3) + [dict(navs(1)[0], nav=Decimal("42"))]
    result = upsert(engine, tables.fund_nav, rows)
    assert (result.inserted, result.duplicates) == (3, 1)
    with engine.connect() as conn:
        assert (
            conn.execute(select(tables.fund_nav.c.nav).limit(1).order_by("nav_date")).scalar_one()
            == 42
        )


def test_a_failure_midway_leaves_nothing_of_the_batch(database_url):
    engine = ensure_schema(database_url)
    rows = navs(1500)
    rows[1200]["nav"] = None  # NOT NULL: the second batch fails after the first was sent
    with pytest.raises(Exception, match="(?i)null"):
        upsert(engine, tables.fund_nav, rows, batch_size=1000)
    assert count(engine, tables.fund_nav) == 0


def test_ignore_keeps_existing_rows(database_url):
    engine = ensure_schema(database_url)
    tick = {
        "source": "binance",
        "symbol": "BTCUSDT",
        "trade_id": 1,
        "price": Decimal("1.1"),
        "quantity": Decimal("2"),
        "side": "buy",
        "traded_at": datetime(2026, 1, 1, tzinfo=UTC),
        "received_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    upsert(engine, tables.trade_tick, [tick], on_conflict="ignore")
    later = dict(tick, received_at=datetime(2026, 1, 2, tzinfo=UTC))
    result = upsert(
        engine, tables.trade_tick, [later, dict(tick, trade_id=2)], on_conflict="ignore"
    )
    assert (result.inserted, result.unchanged) == (1, 1)
    unclassified = upsert(engine, tables.trade_tick, [later], on_conflict="ignore", classify=False)
    assert unclassified.written == 1
    with engine.connect() as conn:
        received = conn.execute(
            select(tables.trade_tick.c.received_at).where(tables.trade_tick.c.trade_id == 1)
        ).scalar_one()
    assert received == datetime(2026, 1, 1, tzinfo=UTC)
    assert count(engine, tables.trade_tick) == 2


def test_rows_must_share_columns(sqlite_url):
    engine = ensure_schema(sqlite_url)
    rows = navs(2)
    del rows[1]["nav"]
    with pytest.raises(ValueError, match="every row must have the columns"):
        upsert(engine, tables.fund_nav, rows)


def _tick(symbol: str, trade_id: int, price: str = "1.1") -> dict:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=trade_id)
    return {
        "source": "binance",
        "symbol": symbol,
        "trade_id": trade_id,
        "price": Decimal(price),
        "quantity": Decimal("2"),
        "side": "buy",
        "traded_at": at,
        "received_at": at,
    }


HOSTILE_KEYS = ["O'B \\ x", "%s %% 5%", ":name \\:x", "a'),('b", "Việt 📈", "x\\", "\\'"]


def _hostile_keys_round_trip(engine, no_backslash_escapes: bool = False) -> None:
    rows = [_tick(symbol, i) for i, symbol in enumerate(HOSTILE_KEYS)]
    with engine.begin() as conn:
        if no_backslash_escapes:
            conn.exec_driver_sql(
                "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')"
            )
        first = upsert(conn, tables.trade_tick, rows)
        again = upsert(conn, tables.trade_tick, rows)
        changed = upsert(conn, tables.trade_tick, [_tick(HOSTILE_KEYS[2], 2, price="9.5")])
    assert (first.inserted, again.unchanged, changed.updated) == (7, 7, 1)
    with engine.connect() as conn:
        query = select(tables.trade_tick.c.symbol, tables.trade_tick.c.price)
        stored = dict(conn.execute(query.order_by(tables.trade_tick.c.trade_id)).all())
    assert list(stored) == HOSTILE_KEYS
    assert stored[HOSTILE_KEYS[2]] == Decimal("9.5")


def test_keys_of_any_text_are_classified_and_written_exactly(database_url):
    """On MySQL/MariaDB the classifying read lists the keys as SQL literals and the write sends
    rows as literals: quotes, backslashes, percent signs and `:name` are data, and each key
    finds its own stored row."""
    _hostile_keys_round_trip(ensure_schema(database_url))


def test_keys_are_literals_quoted_per_the_backslash_mode(mariadb_url):
    """The same under NO_BACKSLASH_ESCAPES: the driver quotes per the session's mode."""
    _hostile_keys_round_trip(ensure_schema(mariadb_url), no_backslash_escapes=True)


def test_the_classifying_read_uses_the_key_whatever_the_batch(mariadb_url):
    """A batch of 1,000 rows is classified by reads MariaDB answers from the primary key. The
    keys listed as literals once compiled to `(...) IN (...) = 1`, which no index serves: every
    batch's read scanned the whole table, and a year of klines slowed as the table grew."""
    engine = ensure_schema(mariadb_url)
    # enough rows that reading a batch's keys by the key is cheaper than a scan
    rows = [_tick("BTCUSDT", i) for i in range(30_000)]
    upsert(engine, tables.trade_tick, rows, batch_size=5000, classify=False)
    reads: list[str] = []

    def keep_reads(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)

    event.listen(engine, "before_cursor_execute", keep_reads)
    try:
        again = upsert(engine, tables.trade_tick, [_tick("BTCUSDT", i) for i in range(1000, 2000)])
    finally:
        event.remove(engine, "before_cursor_execute", keep_reads)
    assert again.unchanged == 1000
    assert reads
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE TABLE trade_tick")  # the plans as for a table long filled
        for statement in reads:
            plans = conn.exec_driver_sql(f"EXPLAIN {statement}").mappings().all()
            on_table = [(p["type"], p["key"]) for p in plans if p["table"] == "trade_tick"]
            assert on_table in ([("range", "PRIMARY")], [("eq_ref", "PRIMARY")]), plans
