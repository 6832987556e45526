"""typed source fields and an extra JSON column on every data table

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa

from ingestion_pipelines.storage.migration_ops import op
from ingestion_pipelines.storage.tables import COINGECKO_COLUMNS, FUND_RETURN_PERIODS
from ingestion_pipelines.storage.types import ExactDecimal, JsonDocument, JsonValue, UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DATA_TABLES = (
    "fund",
    "fund_nav",
    "news_article",
    "crypto_market_snapshot",
    "fear_greed_index",
    "trade_tick",
    "stock_quote",
    "trade_bar_1m",
)


def _new_columns() -> dict[str, list[sa.Column]]:
    """table -> the nullable columns this revision adds (`extra` last on every data table)."""
    columns: dict[str, list[sa.Column]] = {name: [] for name in DATA_TABLES}
    columns["fund"] += [
        sa.Column("figures_updated_at", UtcDateTime()),
        *(sa.Column(f"return_{period}", ExactDecimal()) for period in FUND_RETURN_PERIODS),
        sa.Column("management_fee", ExactDecimal()),
        sa.Column("risk_level", sa.String(128)),
        sa.Column("fund_type", sa.String(128)),
        sa.Column("trading_session_at", UtcDateTime()),
    ]
    columns["news_article"] += [
        sa.Column("guid", sa.String(1024)),
        sa.Column("categories", JsonValue()),
    ]
    columns["crypto_market_snapshot"] += [
        sa.Column(name, kind()) for name, kind in COINGECKO_COLUMNS
    ]
    columns["stock_quote"] += [sa.Column("time_source", sa.String(16))]
    for name in DATA_TABLES:
        columns[name].append(sa.Column("extra", JsonDocument()))
    return columns


def upgrade() -> None:
    for table, columns in _new_columns().items():
        for column in columns:
            op.add_column(table, column)


def downgrade() -> None:
    for table, columns in _new_columns().items():
        with op.batch_alter_table(table) as batch:
            for column in reversed(columns):
                batch.drop_column(column.name)
