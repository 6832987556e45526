"""Archive pages read by connectorx (`storage.archive_cx`) on MariaDB and PostgreSQL: the same
Parquet as the driver's cursor (values and types, decimals at full width), page queries whose
previous-page key is rendered as a literal even when it looks like SQL, errors without the
connection URL's credentials."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from ingestion_pipelines.storage import archive, archive_cx, retention
from ingestion_pipelines.storage.archive import DECIMAL
from ingestion_pipelines.storage.archive_pages import PageError
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import trade_tick
from ingestion_pipelines.storage.upsert import upsert

DAY = date(2026, 5, 1)
# key values that would end the literal and run SQL if they were pasted in, not rendered
HOSTILE = ["x' OR '1'='1", "a\\' OR 1=1 -- ", "b'; DROP TABLE trade_tick; --", 'q"`\\\\']


def _ticks() -> list[dict]:
    rows = []
    for n in range(12):
        at = datetime(2026, 5, 1, 3, n, 7, 123456 + n, tzinfo=UTC)
        rows.append(
            {
                "source": "binance",
                "symbol": HOSTILE[n % len(HOSTILE)],
                "trade_id": 10_000_000_000 + n,
                # 20 integer digits and 18 fractional ones: DECIMAL(38, 18) at its full width
                "price": Decimal("12345678901234567890.123456789012345678") + n,
                "quantity": Decimal("0.000000000000000001") * (n + 1),
                "side": "buy" if n % 2 else "sell",
                "traded_at": at,
                "received_at": at + timedelta(microseconds=250),
                "extra": {"M": True, "E": 1_700_000_000_123 + n, "note": "ảnh ✓"},
            }
        )
    return rows


@pytest.fixture(params=["mariadb", "postgres"])
def engine(request):
    engine = ensure_schema(request.getfixturevalue(f"{request.param}_url"))
    upsert(engine, trade_tick, _ticks())
    return engine


class _Published(Exception):
    """Stops archive_day right after publishing: the rows stay, the file is there."""


def _archive_file(engine, url: str) -> pa.Table:
    def stop(file) -> None:
        raise _Published

    with pytest.raises(_Published):
        retention.archive_day(
            engine, trade_tick, "traded_at", DAY, archive_url=url, page_rows=2, after_publish=stop
        )
    fs, root = archive.archive_fs(url)
    (path,) = archive.day_files(fs, root, "trade_tick", DAY)
    return pq.read_table(path)


def test_connectorx_and_cursor_write_identical_parquet(engine, tmp_path, monkeypatch):
    assert archive_cx.connectorx_url(engine.url) is not None
    pages = []
    monkeypatch.setattr(
        retention, "read_page_cx", lambda *a: pages.append(a) or archive_cx.read_page_cx(*a)
    )
    through_cx = _archive_file(engine, str(tmp_path / "cx"))
    assert len(pages) == 7  # 12 rows, 2 a page: connectorx read every page

    monkeypatch.setattr(retention, "connectorx_url", lambda url: None)
    through_cursor = _archive_file(engine, str(tmp_path / "cursor"))
    assert len(pages) == 7

    assert through_cx.schema == through_cursor.schema
    assert through_cx.schema.field("price").type == DECIMAL
    assert through_cx.equals(through_cursor)
    stored = sorted(_ticks(), key=lambda r: (r["symbol"], r["trade_id"]))
    assert through_cx.column("price").to_pylist() == [r["price"] for r in stored]
    assert through_cx.column("quantity").to_pylist() == [r["quantity"] for r in stored]
    assert through_cx.column("traded_at").to_pylist() == [r["traded_at"] for r in stored]


def test_a_hostile_key_is_rendered_as_a_literal_not_sql(engine):
    keys = [trade_tick.c[name] for name in retention.key_columns(trade_tick)]
    at = datetime(2026, 5, 1, 3, 2, 7, 123458, tzinfo=UTC)  # trade 10_000_000_002's time
    last = ("binance", "b'; DROP TABLE trade_tick; --", 10_000_000_002, at)
    query = (
        archive_cx.text_decimal_select(trade_tick)
        .where(retention._after(keys, last, engine.dialect.name))
        .order_by(*keys)
    )
    sql = archive_cx.render_sql(engine, query)
    assert "DROP TABLE trade_tick; --" in sql  # inside a quoted literal, its quote escaped
    assert "'b'; DROP" not in sql
    schema = archive.arrow_schema(trade_tick)
    batch = archive_cx.read_page_cx(archive_cx.connectorx_url(engine.url), sql, schema)
    after = sorted(
        (r["symbol"], r["trade_id"]) for r in _ticks() if (r["symbol"], r["trade_id"]) > last[1:3]
    )
    assert (
        list(
            zip(
                batch.column("symbol").to_pylist(),
                batch.column("trade_id").to_pylist(),
                strict=True,
            )
        )
        == after
    )
    assert after and "trade_tick" in inspect(engine).get_table_names()


def test_connectorx_errors_carry_no_credentials(mariadb_url, postgres_url):
    """A refused login on either server: connectorx's connection pool tries again for 30 s
    before it gives up, so the two servers are asked side by side (its wait frees the GIL)."""
    secret = "Hunter2-sekret-Pw"

    def refused(database_url: str) -> tuple[str, PageError]:
        url = make_url(archive_cx.connectorx_url(make_url(database_url)))
        wrong = url.set(password=secret).render_as_string(hide_password=False)
        with pytest.raises(PageError) as failed:
            archive_cx.read_page_cx(wrong, "SELECT 1", pa.schema([("x", pa.int64())]))
        return wrong, failed.value

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(refused, [mariadb_url, postgres_url]))
    for wrong, error in outcomes:
        assert secret not in str(error)
        assert error.__cause__ is None and error.__context__ is None
        quoted = f"cannot connect to {wrong} (password={secret})"
        assert secret not in archive_cx._redacted(quoted, wrong)


def test_a_value_that_would_lose_a_digit_is_refused():
    assert archive_cx._to_kind(DECIMAL, pa.array(["1.000000000000000001"])).to_pylist() == [
        Decimal("1.000000000000000001")
    ]
    with pytest.raises(pa.ArrowInvalid):
        archive_cx._to_kind(DECIMAL, pa.array(["1.0000000000000000001"]))
    naive = pa.array([datetime(2026, 5, 1, 3)], pa.timestamp("us"))
    assert archive_cx._to_kind(archive.TIMESTAMP, naive).to_pylist() == [
        datetime(2026, 5, 1, 3, tzinfo=UTC)
    ]


def test_sqlite_and_unknown_options_keep_the_cursor():
    assert archive_cx.connectorx_url(make_url("sqlite:///x.db")) is None
    assert archive_cx.connectorx_url(make_url("mysql+pymysql://u:p@h/db?ssl_ca=/ca.pem")) is None
    assert archive_cx.connectorx_url(make_url("mysql+pymysql://u:p@h/db?charset=utf8mb4")) == (
        "mysql://u:p@h/db"
    )
