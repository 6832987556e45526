"""`fast_upsert`, the hot path of `upsert`'s statement: the same rows and semantics on every
database, values written exactly (on MySQL/MariaDB as SQL literals built here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.upsert import fast_upsert

HANOI = timezone(timedelta(hours=7))


def trade(trade_id: int, **changes) -> dict:
    at = datetime(2026, 4, 14, 3, 0, 0, 123456, tzinfo=UTC) + timedelta(milliseconds=trade_id)
    row = {
        "source": "binance",
        "symbol": "BTCUSDT",
        "trade_id": trade_id,
        "price": Decimal("43210.123456789012345678"),
        "quantity": Decimal("0.000000000000000001"),
        "side": "buy",
        "traded_at": at,
        "received_at": at,
    }
    row.update(changes)
    return row


def stored(engine, table=tables.trade_tick) -> list[dict]:
    with engine.connect() as conn:
        query = select(table).order_by(*table.primary_key.columns)
        return [dict(r) for r in conn.execute(query).mappings()]


def test_values_round_trip_exactly(database_url):
    engine = ensure_schema(database_url)
    hostile = 'O\'B \\ "x" %s %% 5%;-- Việt 📈'  # 25 characters (symbol is 32)
    rows = [
        trade(1),
        trade(2, symbol=hostile, price=Decimal("1E-18"), quantity=Decimal("99999999999999999999")),
        trade(3, traded_at=datetime(2026, 4, 14, 10, 0, tzinfo=HANOI)),  # 03:00 UTC
        trade(4, price="12.5"),  # a str for an exact decimal, as the column type accepts
    ]
    with engine.begin() as conn:
        assert fast_upsert(conn, tables.trade_tick, rows, on_conflict="ignore") == 4
    got = {(r["symbol"], r["trade_id"]): r for r in stored(engine)}
    assert got[(hostile, 2)]["price"] == Decimal("1E-18")
    assert got[(hostile, 2)]["quantity"] == Decimal("99999999999999999999")
    assert got[("BTCUSDT", 1)]["price"] == Decimal("43210.123456789012345678")
    assert got[("BTCUSDT", 1)]["traded_at"] == rows[0]["traded_at"]
    assert got[("BTCUSDT", 3)]["traded_at"] == datetime(2026, 4, 14, 3, 0, tzinfo=UTC)
    assert got[("BTCUSDT", 4)]["price"] == Decimal("12.5")


def test_repeated_strings_are_escaped_alike(mariadb_url):
    """Short strings are escaped once a call and reused; each row must still store its own."""
    engine = ensure_schema(mariadb_url)
    hostile = "O'B \\ x"
    rows = [trade(i, symbol=hostile, side="sell" if i % 2 else "buy") for i in range(1, 6)]
    quotes = "'\\" * 20 + "Việt"
    rows += [trade(6, symbol=quotes[:32]), trade(7, symbol=quotes[-32:])]  # 32: the column size
    with engine.begin() as conn:
        assert fast_upsert(conn, tables.trade_tick, rows, on_conflict="ignore") == 7
    got = {r["trade_id"]: (r["symbol"], r["side"]) for r in stored(engine)}
    assert got == {row["trade_id"]: (row["symbol"], row["side"]) for row in rows}


def test_ignore_keeps_the_first_update_takes_the_last(database_url):
    engine = ensure_schema(database_url)
    with engine.begin() as conn:
        fast_upsert(conn, tables.trade_tick, [trade(1)], on_conflict="ignore")
        fast_upsert(
            conn, tables.trade_tick, [trade(1, side="sell"), trade(2)], on_conflict="ignore"
        )
    assert [r["side"] for r in stored(engine)] == ["buy", "buy"]
    bar = {
        "source": "binance",
        "symbol": "BTCUSDT",
        "bar_start": datetime(2026, 4, 14, 3, 0, tzinfo=UTC),
        "open": Decimal(1),
        "high": Decimal(2),
        "low": Decimal(1),
        "close": Decimal(2),
        "volume": Decimal(3),
        "trade_count": 2,
    }
    with engine.begin() as conn:
        fast_upsert(conn, tables.trade_bar_1m, [bar])
        fast_upsert(conn, tables.trade_bar_1m, [{**bar, "close": Decimal("1.5"), "trade_count": 3}])
    (row,) = stored(engine, tables.trade_bar_1m)
    assert (row["close"], row["trade_count"], row["open"]) == (Decimal("1.5"), 3, Decimal(1))


def test_a_statement_per_megabyte_in_one_transaction(mariadb_url):
    engine = ensure_schema(mariadb_url)
    rows = [trade(i, symbol="S" * 32) for i in range(12_000)]  # ~2.5 MB of literals
    with engine.begin() as conn:
        assert fast_upsert(conn, tables.trade_tick, rows, on_conflict="ignore") == 12_000
    assert len(stored(engine)) == 12_000


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"traded_at": datetime(2026, 4, 14, 3, 0)}, ValueError),  # naive
        ({"price": 1.5}, TypeError),  # a float for an exact decimal
        ({"price": Decimal("NaN")}, ValueError),
    ],
)
def test_refuses_what_the_column_types_refuse(mariadb_url, changes, error):
    engine = ensure_schema(mariadb_url)
    with pytest.raises(error), engine.begin() as conn:
        fast_upsert(conn, tables.trade_tick, [trade(1), trade(2, **changes)], on_conflict="ignore")
    assert stored(engine) == []  # nothing of the batch


class _Sneaky:
    """Any object the driver does not know: PyMySQL's generic encoder quotes `str(obj)` with
    backslashes whatever the server's mode."""

    def __str__(self) -> str:
        return "x\\', 'hacked', 0, 'sell', '2026-01-01 00:00:00', '2026-01-01 00:00:00') -- "


def _no_backslash_escapes(conn) -> None:
    conn.exec_driver_sql("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
    mode = conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar_one()
    assert "NO_BACKSLASH_ESCAPES" in mode


def test_unknown_types_are_refused_not_escaped(mariadb_url):
    """As found in review (issue 22): under NO_BACKSLASH_ESCAPES the generic fallback wrote
    `'x\\', 'hacked', ...` and the value's text became SQL. Only str, int, Decimal, datetime,
    date, bool and None are written; anything else is a clear TypeError and nothing is sent."""
    engine = ensure_schema(mariadb_url)
    for value in (_Sneaky(), ("a", "b"), {"a": 1}, b"raw", 1.5):
        with engine.begin() as conn:
            _no_backslash_escapes(conn)
            with pytest.raises(TypeError, match=r"symbol: a \w+ cannot be written by fast_upsert"):
                fast_upsert(conn, tables.trade_tick, [trade(1, symbol=value)], on_conflict="ignore")
    assert stored(engine) == []


def test_strings_round_trip_under_no_backslash_escapes(mariadb_url):
    """The driver quotes strings per the server's backslash mode, read from the session."""
    engine = ensure_schema(mariadb_url)
    hostile = ["x\\", "x\\'", "'\\''", "\\\\' -- ", "a'b\\nc", "%s\\0\x00"]
    long = "\\' " * 30 + "Việt"  # longer than the short-string cache
    rows = [trade(i, symbol=s) for i, s in enumerate(hostile, 1)]
    rows.append(trade(99, side="\\'", symbol=long[-32:]))
    with engine.begin() as conn:
        _no_backslash_escapes(conn)
        assert fast_upsert(conn, tables.trade_tick, rows, on_conflict="ignore") == len(rows)
    got = {r["trade_id"]: (r["symbol"], r["side"]) for r in stored(engine)}
    assert got == {row["trade_id"]: (row["symbol"], row["side"]) for row in rows}


def test_known_plain_types_are_written(mariadb_url):
    """bool and str subclasses, and dates (a plain column), under NO_BACKSLASH_ESCAPES too."""
    from datetime import date
    from enum import StrEnum

    class Side(StrEnum):
        BUY = "b'\\"

    engine = ensure_schema(mariadb_url)
    navs = [{"fund_id": 7, "nav_date": date(2026, 11, 20), "nav": Decimal("10234.56")}]
    with engine.begin() as conn:
        _no_backslash_escapes(conn)
        fast_upsert(conn, tables.trade_tick, [trade(True, side=Side.BUY)])
        fast_upsert(conn, tables.fund_nav, navs)
    assert [(r["trade_id"], r["side"]) for r in stored(engine)] == [(1, "b'\\")]
    got = [(r["fund_id"], r["nav_date"], r["nav"]) for r in stored(engine, tables.fund_nav)]
    assert got == [(7, date(2026, 11, 20), Decimal("10234.56"))]


def test_extra_json_is_written_as_upsert_would(database_url):
    """OKX and Bybit trades always carry `extra`: the fast path writes the JSON text the column's
    bind processing gives (`json_text`), hostile text and NULL included."""
    from sqlalchemy import text

    from ingestion_pipelines.storage.types import json_text

    engine = ensure_schema(database_url)
    extra = {"seq": 89200463112, "BT": False, "note": 'O\'B \\ "x" %s Việt 📈', "px": "1.10"}
    rows = [trade(1, extra=extra), trade(2, extra=None), trade(3, extra=json_text({"a": 1}))]
    with engine.begin() as conn:
        assert fast_upsert(conn, tables.trade_tick, rows, on_conflict="ignore") == 3
    got = {r["trade_id"]: r["extra"] for r in stored(engine)}
    assert got == {1: extra, 2: None, 3: {"a": 1}}
    with engine.connect() as conn:
        raw = conn.execute(text("SELECT extra FROM trade_tick WHERE trade_id = 1")).scalar_one()
    assert raw == json_text(extra)
