"""order books: order_book_snapshot and order_book_resync (binance_depth, issue 21)

New tables only: nothing stored before changes.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-06 07:07:19.199949
"""

import sqlalchemy as sa

import ingestion_pipelines.storage.types
from ingestion_pipelines.storage.migration_ops import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_book_resync",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("from_update_id", sa.BigInteger(), nullable=True),
        sa.Column("to_update_id", sa.BigInteger(), nullable=True),
        sa.Column("extra", ingestion_pipelines.storage.types.JsonDocument(), nullable=True),
        sa.PrimaryKeyConstraint(
            "source", "symbol", "at", "reason", name=op.f("pk_order_book_resync")
        ),
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "order_book_snapshot",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("last_update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=False),
        sa.Column("bids", ingestion_pipelines.storage.types.JsonDocument(), nullable=False),
        sa.Column("asks", ingestion_pipelines.storage.types.JsonDocument(), nullable=False),
        sa.Column("extra", ingestion_pipelines.storage.types.JsonDocument(), nullable=True),
        sa.PrimaryKeyConstraint(
            "source", "symbol", "last_update_id", name=op.f("pk_order_book_snapshot")
        ),
        mysql_charset="utf8mb4",
    )
    with op.batch_alter_table("order_book_snapshot", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_order_book_snapshot_symbol_at"), ["symbol", "at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("order_book_snapshot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_book_snapshot_symbol_at"))

    op.drop_table("order_book_snapshot")
    op.drop_table("order_book_resync")
