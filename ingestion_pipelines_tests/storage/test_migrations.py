from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import inspect, select

from ingestion_pipelines.cli import main as ingest
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import ensure_schema, get_engine
from ingestion_pipelines.storage.migrate import current_revision, head_revision, upgrade
from ingestion_pipelines.storage.schema_base import PARTITION_DAY_COLUMN

# The contract's tables: natural key and required columns.
CONTRACT = {
    "fund": (["fund_id"], ["code", "name", "asset_type", "issuer", "nav", "nav_updated_at"]),
    "fund_nav": (["fund_id", "nav_date"], ["nav"]),
    "news_article": (["url"], ["source", "title", "summary", "published_at"]),
    "crypto_market_snapshot": (
        ["coin_id", "captured_at"],
        ["symbol", "price_usd", "market_cap_usd", "volume_24h_usd"],
    ),
    "fear_greed_index": (["index_date"], ["value", "classification"]),
    "trade_tick": (
        ["source", "symbol", "trade_id"],
        ["price", "quantity", "side", "traded_at", "received_at"],
    ),
    "stock_quote": (["symbol", "quoted_at"], ["last_price", "last_volume", "cumulative_volume"]),
    "trade_bar_1m": (
        ["source", "symbol", "bar_start"],
        ["open", "high", "low", "close", "volume", "trade_count"],
    ),
    "worker_config": (["id"], ["worker_id", "key", "value", "updated_at", "updated_by"]),
    "worker_state": (
        ["worker_id"],
        ["status", "heartbeat_at", "last_success_at", "last_error", "details"],
    ),
    "execution_log": (["id"], ["logged_at", "worker_id", "level", "message", "run_id"]),
    "dead_letter": (["id"], ["worker_id", "received_at", "reason", "payload"]),
}


def test_upgrade_creates_every_contract_table_with_its_key(database_url):
    assert current_revision(database_url) is None
    assert ingest(["db", "upgrade", "--database-url", database_url]) == 0
    assert current_revision(database_url) == head_revision()
    inspector = inspect(get_engine(database_url))
    names = set(inspector.get_table_names())
    for table, (key, required) in CONTRACT.items():
        assert table in names, table
        stored_key = inspector.get_pk_constraint(table)["constrained_columns"]
        # the contract's key, then only the column a day partition needs in every unique key
        # (trade_tick's traded_at, migration 0032)
        day_column = tables.metadata.tables[table].info.get(PARTITION_DAY_COLUMN)
        assert stored_key in (key, [*key, day_column]), table
        columns = {c["name"] for c in inspector.get_columns(table)}
        assert set(required) <= columns, (table, set(required) - columns)
    uniques = inspector.get_unique_constraints("worker_config") or [
        i for i in inspector.get_indexes("worker_config") if i["unique"]
    ]
    assert any(u["column_names"] == ["scope", "key"] for u in uniques)


def test_upgrade_twice_changes_nothing(database_url):
    assert upgrade(database_url) == head_revision()
    assert upgrade(database_url) == head_revision()
    assert ingest(["db", "current", "--database-url", database_url]) == 0


def test_prices_are_exact_and_times_are_utc_with_microseconds(database_url):
    engine = ensure_schema(database_url)
    ict = timezone(timedelta(hours=7))
    traded = datetime(2026, 4, 14, 13, 32, 7, 123456, tzinfo=ict)
    row = {
        "source": "binance",
        "symbol": "BTCUSDT",
        "trade_id": 9_000_000_000_123,
        "price": Decimal("43210.123456789012345678"),
        "quantity": Decimal("0.00000001"),
        "side": "sell",
        "traded_at": traded,
        "received_at": datetime(2026, 4, 14, 6, 32, 7, 999999, tzinfo=UTC),
    }
    with engine.begin() as conn:
        conn.execute(tables.trade_tick.insert(), [row])
    with engine.connect() as conn:
        stored = conn.execute(select(tables.trade_tick)).mappings().one()
    assert stored["price"] == Decimal("43210.123456789012345678")
    assert stored["quantity"] == Decimal("0.00000001")
    assert stored["traded_at"] == traded
    assert stored["traded_at"].tzinfo == UTC
    assert stored["traded_at"].hour == 6 and stored["traded_at"].microsecond == 123456
    assert stored["trade_id"] == 9_000_000_000_123


def test_naive_datetimes_and_floats_are_refused(sqlite_url):
    engine = ensure_schema(sqlite_url)
    row = {
        "source": "x",
        "symbol": "Y",
        "trade_id": 1,
        "price": Decimal("1"),
        "quantity": Decimal("1"),
        "side": "buy",
        "traded_at": datetime(2026, 1, 1),
        "received_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    with pytest.raises(Exception, match="naive datetime"), engine.begin() as conn:
        conn.execute(tables.trade_tick.insert(), [row])
    row["traded_at"] = datetime(2026, 1, 1, tzinfo=UTC)
    row["price"] = 1.1
    with pytest.raises(Exception, match="float"), engine.begin() as conn:
        conn.execute(tables.trade_tick.insert(), [row])


def test_every_data_table_has_the_columns_of_tables_py_and_an_extra_column(database_url):
    upgrade(database_url)
    inspector = inspect(get_engine(database_url))
    for name, table in tables.DATA_TABLES.items():
        stored = {c["name"] for c in inspector.get_columns(name)}
        assert stored == set(table.c.keys()), (name, stored ^ set(table.c.keys()))
        assert "extra" in stored
    fund = {c["name"] for c in inspector.get_columns("fund")}
    assert {"return_36m", "management_fee", "risk_level", "figures_updated_at"} <= fund
    assert "time_source" in {c["name"] for c in inspector.get_columns("stock_quote")}


def test_extra_keeps_exact_decimals_as_text_and_unicode_verbatim(database_url):
    engine = ensure_schema(database_url)
    extra = {"navToPrevious": "0.38", "riskLevel": {"name": "Trung bình-Cao"}, "n": 7}
    row = {"index_date": datetime(2026, 1, 1).date(), "value": 50, "classification": "Neutral"}
    with engine.begin() as conn:
        conn.execute(tables.fear_greed_index.insert(), [{**row, "extra": extra}])
    with engine.connect() as conn:
        stored = conn.execute(select(tables.fear_greed_index.c.extra)).scalar_one()
    assert stored == extra


def test_0004_downgrades_and_upgrades_again_keeping_the_rows(database_url):
    from ingestion_pipelines.storage.migrate import downgrade

    engine = ensure_schema(database_url)
    with engine.begin() as conn:
        conn.execute(
            tables.fund_nav.insert(),
            [{"fund_id": 1, "nav_date": datetime(2026, 1, 2).date(), "nav": Decimal("10.5")}],
        )
    assert downgrade(database_url, "0003") == "0003"
    inspector = inspect(get_engine(database_url))
    assert "extra" not in {c["name"] for c in inspector.get_columns("fund_nav")}
    assert "ath" not in {c["name"] for c in inspector.get_columns("crypto_market_snapshot")}
    assert upgrade(database_url) == head_revision()
    with engine.connect() as conn:
        (row,) = conn.execute(select(tables.fund_nav)).mappings().all()
    assert row["nav"] == Decimal("10.5") and row["extra"] is None


def test_migrating_while_dagster_stamps_its_own_alembic_revision_in_another_thread(tmp_path):
    # A run process migrates the execution_log database from the log writer's thread while
    # Dagster creates its SQLite storages (stamping their Alembic revision) in the main thread.
    # Alembic's `context` proxy is module-global, so the two must not share it.
    import threading

    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    errors: list[BaseException] = []
    stop = threading.Event()

    def dagster_stamping() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                SqliteEventLogStorage(str(tmp_path / f"dagster{n}")).dispose()
            except BaseException as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(exc)
                return

    stamping = threading.Thread(target=dagster_stamping)
    stamping.start()
    try:
        for i in range(15):
            url = f"sqlite:///{tmp_path / f'ours{i}.db'}"
            try:
                assert upgrade(url) == head_revision()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                break
    finally:
        stop.set()
        stamping.join()
    assert not errors, repr(errors[0])
