"""Every table of the contract, defined once. Migrations create them; code reads these objects.

Data tables are keyed by their natural key (the upsert target). Control tables (`worker_config`,
`worker_state`, `execution_log`, `dead_letter`) always live in `INGEST_DATABASE_URL`.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ingestion_pipelines.storage.dataset_tables import (
    financial_statement,
    financial_statement_history,
    stock_eod_adjusted,
)
from ingestion_pipelines.storage.declared import add_declared_tables
from ingestion_pipelines.storage.satellite_tables import (
    satellite,
    satellite_channel,
    satellite_transponder,
)
from ingestion_pipelines.storage.schema_base import PARTITION_DAY_COLUMN, extra_column, metadata
from ingestion_pipelines.storage.types import (
    ExactDecimal,
    JsonDocument,
    JsonValue,
    LongText,
    UtcDateTime,
)

# Typed columns added by migration 0004 (the migration reads them here; `fund` uses the periods,
# `crypto_market_snapshot` is declared in defs/coingecko_markets/defs.yaml).
FUND_RETURN_PERIODS = ("1m", "3m", "6m", "12m", "36m", "since_inception", "to_last_year")
COINGECKO_COLUMNS = (
    ("high_24h", ExactDecimal),
    ("low_24h", ExactDecimal),
    ("price_change_24h", ExactDecimal),
    ("market_cap_change_24h", ExactDecimal),
    ("market_cap_change_pct_24h", ExactDecimal),
    ("fully_diluted_valuation", ExactDecimal),
    ("ath", ExactDecimal),
    ("ath_change_pct", ExactDecimal),
    ("ath_date", UtcDateTime),
    ("atl", ExactDecimal),
    ("atl_change_pct", ExactDecimal),
    ("atl_date", UtcDateTime),
)
# SSI board-frame fields given typed `stock_quote` columns by migration 0009 (column, kind,
# 0-based field position; see shared/recordings/README.md and docs/source-fields.md).
SSI_QUOTE_COLUMNS = (
    ("high_price", ExactDecimal, 44),
    ("low_price", ExactDecimal, 46),
    ("foreign_buy_volume", ExactDecimal, 48),
    ("foreign_buy_value", ExactDecimal, 49),
    ("foreign_sell_volume", ExactDecimal, 50),
    ("foreign_sell_value", ExactDecimal, 51),
    ("trading_session", String(16), 63),
    ("foreign_room", ExactDecimal, 65),
    ("instrument_type", String(8), 66),
    ("open_price", ExactDecimal, 75),
)

# ---- data tables ---------------------------------------------------------------------------

# `fund` is declared by its YAML source (defs/<worker>/defs.yaml, table.name: fund).

fund_nav = Table(
    "fund_nav",
    metadata,
    Column("fund_id", BigInteger, primary_key=True, autoincrement=False),
    Column("nav_date", Date, primary_key=True),
    Column("nav", ExactDecimal, nullable=False),
    extra_column(),
)

news_article = Table(
    "news_article",
    metadata,
    # 700 characters keep the key under MySQL's 3072-byte index limit in utf8mb4.
    Column("url", String(700), primary_key=True),
    Column("source", String(64), nullable=False),
    Column("feed_url", String(700)),
    Column("title", String(1024), nullable=False),
    Column("summary", Text),
    Column("image_url", String(2048)),
    Column("published_at", UtcDateTime, nullable=False),
    Column("guid", String(1024)),
    Column("categories", JsonValue),
    extra_column(),
    Index(None, "source", "published_at"),
)

# The Fear & Greed index's table is declared by its YAML source (defs/<worker>/defs.yaml).

trade_tick = Table(
    "trade_tick",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("symbol", String(32), primary_key=True),
    Column("trade_id", BigInteger, primary_key=True, autoincrement=False),
    Column("price", ExactDecimal, nullable=False),
    Column("quantity", ExactDecimal, nullable=False),
    # the taker's side as the source reports it: buy / sell, or none (not reported)
    Column("side", String(4), nullable=False),
    # (migration 0032) in the key only so that a UTC day can be a partition (MariaDB/MySQL need
    # the partitioning column in every unique key): a trade is still identified by source,
    # symbol and trade id, and every feed stamps a trade's time the same way each time it is
    # stored (the source's time, or the receipt time journaled with the frame)
    Column("traded_at", UtcDateTime, primary_key=True),
    Column("received_at", UtcDateTime, nullable=False),
    extra_column(),
    # (migration 0009) a side inferred by us, never reported by the source: buy / sell by the
    # quote rule against the book before the trade (`values.quote_rule_side`), NULL: none inferred
    Column("inferred_side", String(4)),
    Index(None, "symbol", "traded_at"),
    # retention drops whole UTC days by partition where the database has them (`partitions`)
    info={PARTITION_DAY_COLUMN: "traded_at"},
)

stock_quote = Table(
    "stock_quote",
    metadata,
    Column("symbol", String(32), primary_key=True),
    Column("quoted_at", UtcDateTime, primary_key=True),
    Column("board", String(16)),
    Column("exchange", String(16)),
    Column("last_price", ExactDecimal),
    Column("last_volume", ExactDecimal),
    Column("last_side", String(4)),  # NULL for SSI: its board frames report no side
    Column("cumulative_volume", ExactDecimal),
    Column("cumulative_value", ExactDecimal),
    Column("average_price", ExactDecimal),
    Column("reference_price", ExactDecimal),
    Column("ceiling_price", ExactDecimal),
    Column("floor_price", ExactDecimal),
    *(
        Column(f"{side}{level}_{field}", ExactDecimal)
        for side in ("bid", "ask")
        for level in (1, 2, 3)
        for field in ("price", "volume")
    ),
    # "source": the frame's own epoch stamp; "receipt": the frame had none (97-field frames)
    Column("time_source", String(16)),
    extra_column(),
    # added by migration 0009
    *(Column(name, kind) for name, kind, _position in SSI_QUOTE_COLUMNS),
)

trade_bar_1m = Table(
    "trade_bar_1m",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("symbol", String(32), primary_key=True),
    Column("bar_start", UtcDateTime, primary_key=True),
    Column("open", ExactDecimal, nullable=False),
    Column("high", ExactDecimal, nullable=False),
    Column("low", ExactDecimal, nullable=False),
    Column("close", ExactDecimal, nullable=False),
    Column("volume", ExactDecimal, nullable=False),
    Column("trade_count", Integer, nullable=False),
    extra_column(),
)

# ---- control tables ------------------------------------------------------------------------

# `stock` (the listing) and `stock_eod` (its daily prices) are declared in YAML (their folders
# under defs/).

worker_config = Table(
    "worker_config",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("worker_id", String(64), nullable=True),  # NULL: the global row
    Column("key", String(64), nullable=False),
    Column("value", JsonValue, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("updated_by", String(256), nullable=False),
    # NULLs never collide in a unique index, so uniqueness is enforced on a computed scope.
    Column("scope", String(64), Computed("coalesce(worker_id, '*')", persisted=True)),
    UniqueConstraint("scope", "key"),
)

worker_state = Table(
    "worker_state",
    metadata,
    Column("worker_id", String(64), primary_key=True),
    Column("status", String(32), nullable=False),
    Column("heartbeat_at", UtcDateTime),
    Column("last_success_at", UtcDateTime),
    Column("last_error", Text),
    Column("details", JsonValue),
)

execution_log = Table(
    "execution_log",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("logged_at", UtcDateTime, nullable=False),
    Column("worker_id", String(64)),
    Column("level", String(16), nullable=False),
    Column("message", LongText, nullable=False),
    Column("run_id", String(64)),
    Column("process", String(64)),
    extra_column(),
    Index(None, "worker_id", "logged_at"),
    Index(None, "run_id"),
)

dead_letter = Table(
    "dead_letter",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("worker_id", String(64), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload", LongText, nullable=False),
    Column("run_id", String(64)),
    Column("context", JsonValue),
    # what the letter is (`dead_letters.fingerprint`): the same letter written again is ignored
    # (NULL: a letter written before migration 0008)
    Column("fingerprint", String(64)),
    Index(None, "worker_id", "received_at"),
    Index(None, "worker_id", "fingerprint", unique=True),
)

http_validator = Table(
    "http_validator",
    metadata,
    Column("worker_id", String(64), primary_key=True),
    Column("url", String(700), primary_key=True),
    Column("etag", String(512)),
    Column("last_modified", String(128)),
    Column("updated_at", UtcDateTime, nullable=False),
)

feed_fence = Table(
    "feed_fence",
    metadata,
    # The newest fencing token that committed rows for a feed: a sidecar holding an older token
    # (it lost the ownership lock while paused) can no longer commit.
    Column("feed_id", String(64), primary_key=True),
    Column("token", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

crawl_checkpoint = Table(
    "crawl_checkpoint",
    metadata,
    # One row per request of a partitioned crawl whose rows have committed, keyed by the run's
    # logical work (worker, partition range, request identity), never by run id: a re-execution,
    # a run retry or another trigger of the same range resumes from it. Deleted when the range
    # completes. `state` keeps what the request yielded besides rows (follow-up requests, the
    # source's totals, counts), so a resumed run ends exactly as an uninterrupted one.
    Column("worker_id", String(64), primary_key=True),
    Column("scope", String(64), primary_key=True),
    Column("request_key", String(64), primary_key=True),
    Column("state", JsonValue, nullable=False),
    Column("committed_at", UtcDateTime, nullable=False),
)

# ---- order books (issue 21, binance_depth; migration 0013) ---------------------------------------
# The top `depth` levels of a local order book at one update id, every `snapshot_ms`: levels as
# JSON arrays of [price, quantity] decimal strings, exact, best first.
order_book_snapshot = Table(
    "order_book_snapshot",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("symbol", String(32), primary_key=True),
    Column("last_update_id", BigInteger, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime, nullable=False),
    Column("bids", JsonDocument, nullable=False),
    Column("asks", JsonDocument, nullable=False),
    extra_column(),
    Index(None, "symbol", "at"),
)

# Every time a local book was lost and rebuilt from a new REST snapshot: a gap in the diff
# stream, a snapshot older than the buffered events, or a reconnect.
order_book_resync = Table(
    "order_book_resync",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("symbol", String(32), primary_key=True),
    Column("at", UtcDateTime, primary_key=True),
    Column("reason", String(32), primary_key=True),  # gap | snapshot_too_old | reconnect
    Column("from_update_id", BigInteger),  # the book's last update id (NULL: none yet)
    Column("to_update_id", BigInteger),  # the first id that could not be applied (NULL: unknown)
    extra_column(),
)
# ---- end of order books ---------------------------------------------------------------------

# ---- providers' observations (issue 19 §11, reconciliation; migration 0031) -----------------------
# What the providers that did NOT answer a run said about the same rows, asked for the window's last
# days after the run (sources/declared_reconcile.py): one row per (worker, row key, provider, column),
# the value as exact decimal text. Never read as data: the `providers_agree` check compares it with
# the stored rows (sources/providers_agree.py).
provider_observation = Table(
    "provider_observation",
    metadata,
    Column("worker_id", String(64), primary_key=True),
    Column("row_key", String(255), primary_key=True),  # the key columns as sorted JSON
    Column("provider", String(32), primary_key=True),
    Column("column_name", String(64), primary_key=True),
    Column("day", Date),  # the row's date column (NULL: the source has none)
    Column("value", String(64), nullable=False),  # exact decimal text, in the table's unit
    Column("fetched_at", UtcDateTime, nullable=False),
    extra_column(),  # every data table has one (unused here)
    Index(None, "worker_id", "day"),
)
# ---- end of providers' observations ------------------------------------------------------------


DATA_TABLES = {
    t.name: t
    for t in (
        fund_nav,
        news_article,
        trade_tick,
        stock_quote,
        trade_bar_1m,
        # LyngSat (issue 20)
        satellite,
        satellite_transponder,
        satellite_channel,
        order_book_snapshot,
        order_book_resync,
        # adjusted prices (issue 19 item 7)
        stock_eod_adjusted,
        # financial statements (issue 19 item 4)
        financial_statement,
        financial_statement_history,
        provider_observation,  # issue 19 §11, reconciliation
    )
}
CONTROL_TABLES = {
    t.name: t
    for t in (
        worker_config,
        worker_state,
        execution_log,
        dead_letter,
        http_validator,
        feed_fence,
        crawl_checkpoint,
    )
}


def _utf8mb4_everywhere() -> None:
    """Every table declares utf8mb4 on MySQL/MariaDB (a latin1 server default must not apply)."""
    from ingestion_pipelines.storage.pool import MYSQL_CHARSET

    for table in metadata.tables.values():
        table.dialect_kwargs["mysql_charset"] = MYSQL_CHARSET


_utf8mb4_everywhere()


# ---- tables declared by the YAML sources (defs/<worker_id>/defs.yaml) -------------------------
# They join this metadata and DATA_TABLES here, so every user of this module (migrations, the
# sidecar, the catalogue) sees them; they read as this module's attributes too
# (`tables.crypto_market_snapshot`).

_DECLARED = add_declared_tables(metadata, DATA_TABLES, extra_column)


def load_declared_tables() -> list[str]:
    """The names of the tables the YAML sources declare, all in `metadata` and `DATA_TABLES`
    (added when this module was imported: calling it again changes nothing). No Dagster."""
    return list(_DECLARED)


def __getattr__(name: str) -> Table:
    if name in _DECLARED:
        return metadata.tables[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def full_metadata() -> MetaData:
    """Every table of the schema: the ones above and any declared elsewhere that joined them.

    The one hook migrations, `ingest db revision` and the drift test read the schema through
    (never `metadata` directly), so tables declared outside this module are migrated and
    checked like these. Tables that joined after import get utf8mb4 here too.
    """
    _utf8mb4_everywhere()
    return metadata
