"""initial tables of the contract

Revision ID: 0001
Revises:
Create Date: 2026-11-23 10:48:51.556999
"""

import sqlalchemy as sa

import ingestion_pipelines.storage.types
from ingestion_pipelines.storage.migration_ops import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "crypto_market_snapshot",
        sa.Column("coin_id", sa.String(length=128), nullable=False),
        sa.Column("captured_at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=True),
        sa.Column(
            "price_usd",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "market_cap_usd",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column("market_cap_rank", sa.Integer(), nullable=True),
        sa.Column(
            "volume_24h_usd",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "price_change_pct_24h",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "circulating_supply",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "total_supply",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "max_supply",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column("last_updated", ingestion_pipelines.storage.types.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("coin_id", "captured_at", name=op.f("pk_crypto_market_snapshot")),
    )
    op.create_table(
        "dead_letter",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("received_at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", ingestion_pipelines.storage.types.LongText(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("context", ingestion_pipelines.storage.types.JsonValue(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letter")),
    )
    with op.batch_alter_table("dead_letter", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dead_letter_worker_id_received_at"),
            ["worker_id", "received_at"],
            unique=False,
        )

    op.create_table(
        "execution_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("logged_at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=False),
        sa.Column("worker_id", sa.String(length=64), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("message", ingestion_pipelines.storage.types.LongText(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("process", sa.String(length=64), nullable=True),
        sa.Column("extra", ingestion_pipelines.storage.types.JsonValue(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution_log")),
    )
    with op.batch_alter_table("execution_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_execution_log_run_id"), ["run_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_execution_log_worker_id_logged_at"),
            ["worker_id", "logged_at"],
            unique=False,
        )

    op.create_table(
        "fear_greed_index",
        sa.Column("index_date", sa.Date(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("classification", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("index_date", name=op.f("pk_fear_greed_index")),
    )
    op.create_table(
        "fund",
        sa.Column("fund_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("short_name", sa.String(length=128), nullable=True),
        sa.Column("asset_type", sa.String(length=64), nullable=True),
        sa.Column("issuer", sa.String(length=512), nullable=True),
        sa.Column(
            "nav",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column("nav_updated_at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=True),
        sa.Column("first_issue_at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=True),
        sa.Column("status", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("fund_id", name=op.f("pk_fund")),
    )
    op.create_table(
        "fund_nav",
        sa.Column("fund_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("nav_date", sa.Date(), nullable=False),
        sa.Column(
            "nav",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("fund_id", "nav_date", name=op.f("pk_fund_nav")),
    )
    op.create_table(
        "http_validator",
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=700), nullable=False),
        sa.Column("etag", sa.String(length=512), nullable=True),
        sa.Column("last_modified", sa.String(length=128), nullable=True),
        sa.Column("updated_at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("worker_id", "url", name=op.f("pk_http_validator")),
    )
    op.create_table(
        "news_article",
        sa.Column("url", sa.String(length=700), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("feed_url", sa.String(length=700), nullable=True),
        sa.Column("title", sa.String(length=1024), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("image_url", sa.String(length=2048), nullable=True),
        sa.Column("published_at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("url", name=op.f("pk_news_article")),
    )
    with op.batch_alter_table("news_article", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_news_article_source_published_at"),
            ["source", "published_at"],
            unique=False,
        )

    op.create_table(
        "stock_quote",
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("quoted_at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=False),
        sa.Column("board", sa.String(length=16), nullable=True),
        sa.Column("exchange", sa.String(length=16), nullable=True),
        sa.Column(
            "last_price",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "last_volume",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column("last_side", sa.String(length=4), nullable=True),
        sa.Column(
            "cumulative_volume",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "cumulative_value",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "average_price",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "reference_price",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "ceiling_price",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "floor_price",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "bid1_price",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "bid1_volume",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "bid2_price",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "bid2_volume",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "bid3_price",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "bid3_volume",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "ask1_price",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "ask1_volume",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "ask2_price",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "ask2_volume",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "ask3_price",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.Column(
            "ask3_volume",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("symbol", "quoted_at", name=op.f("pk_stock_quote")),
    )
    op.create_table(
        "trade_bar_1m",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("bar_start", ingestion_pipelines.storage.types.UtcDateTime(), nullable=False),
        sa.Column(
            "open",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=False,
        ),
        sa.Column(
            "high",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=False,
        ),
        sa.Column(
            "low",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=False,
        ),
        sa.Column(
            "close",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=False,
        ),
        sa.Column(
            "volume",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=False,
        ),
        sa.Column("trade_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", "symbol", "bar_start", name=op.f("pk_trade_bar_1m")),
    )
    op.create_table(
        "trade_tick",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("trade_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column(
            "price",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=False,
        ),
        sa.Column(
            "quantity",
            ingestion_pipelines.storage.types.ExactDecimal(precision=38, scale=18),
            nullable=False,
        ),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("traded_at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=False),
        sa.Column("received_at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "symbol", "trade_id", name=op.f("pk_trade_tick")),
    )
    with op.batch_alter_table("trade_tick", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_trade_tick_symbol_traded_at"), ["symbol", "traded_at"], unique=False
        )

    op.create_table(
        "worker_config",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("worker_id", sa.String(length=64), nullable=True),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", ingestion_pipelines.storage.types.JsonValue(), nullable=False),
        sa.Column("updated_at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=256), nullable=False),
        sa.Column(
            "scope",
            sa.String(length=64),
            sa.Computed("coalesce(worker_id, '*')", persisted=True),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_config")),
        sa.UniqueConstraint("scope", "key", name=op.f("uq_worker_config_scope_key")),
    )
    op.create_table(
        "worker_state",
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("heartbeat_at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=True),
        sa.Column(
            "last_success_at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=True
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("details", ingestion_pipelines.storage.types.JsonValue(), nullable=True),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_state")),
    )


def downgrade() -> None:

    op.drop_table("worker_state")
    op.drop_table("worker_config")
    with op.batch_alter_table("trade_tick", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trade_tick_symbol_traded_at"))

    op.drop_table("trade_tick")
    op.drop_table("trade_bar_1m")
    op.drop_table("stock_quote")
    with op.batch_alter_table("news_article", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_news_article_source_published_at"))

    op.drop_table("news_article")
    op.drop_table("http_validator")
    op.drop_table("fund_nav")
    op.drop_table("fund")
    op.drop_table("fear_greed_index")
    with op.batch_alter_table("execution_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_execution_log_worker_id_logged_at"))
        batch_op.drop_index(batch_op.f("ix_execution_log_run_id"))

    op.drop_table("execution_log")
    with op.batch_alter_table("dead_letter", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dead_letter_worker_id_received_at"))

    op.drop_table("dead_letter")
    op.drop_table("crypto_market_snapshot")
