"""stock and stock_eod: every listed Vietnamese stock and its daily prices

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa

from ingestion_pipelines.storage.migration_ops import op
from ingestion_pipelines.storage.types import ExactDecimal, JsonDocument

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTF8MB4 = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def _exact(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, ExactDecimal(precision=38, scale=18), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "stock",
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("exchange", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("name_en", sa.String(length=512), nullable=True),
        sa.Column("short_name", sa.String(length=256), nullable=True),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("listed_on", sa.Date(), nullable=True),
        sa.Column("delisted_on", sa.Date(), nullable=True),
        sa.Column("isin", sa.String(length=32), nullable=True),
        sa.Column("company_id", sa.String(length=64), nullable=True),
        sa.Column("extra", JsonDocument(), nullable=True),
        sa.PrimaryKeyConstraint("symbol", name=op.f("pk_stock")),
        **UTF8MB4,
    )
    op.create_table(
        "stock_eod",
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("trade_date", sa.Date(), nullable=False),
        sa.Column("exchange", sa.String(length=16), nullable=True),
        *(_exact(name, nullable=False) for name in ("open", "high", "low", "close", "volume")),
        *(
            _exact(name)
            for name in (
                "value",
                "average",
                "reference",
                "ceiling",
                "floor",
                "adjusted_close",
                "put_through_volume",
                "put_through_value",
                "change",
                "change_pct",
            )
        ),
        sa.Column("extra", JsonDocument(), nullable=True),
        sa.PrimaryKeyConstraint("symbol", "trade_date", name=op.f("pk_stock_eod")),
        **UTF8MB4,
    )
    op.create_index(op.f("ix_stock_eod_trade_date"), "stock_eod", ["trade_date"])


def downgrade() -> None:
    op.drop_index(op.f("ix_stock_eod_trade_date"), table_name="stock_eod")
    op.drop_table("stock_eod")
    op.drop_table("stock")
