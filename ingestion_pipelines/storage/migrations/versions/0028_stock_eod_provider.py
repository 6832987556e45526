"""stock_eod: a second provider (issue 19 §11). `provider` names each row's provider (NULL: a row
stored before this revision, VNDIRECT's); `prices_adjusted` says whether open/high/low/close are
the provider's adjusted bars (Vietcap's chart API) rather than raw trading prices (NULL: before
this revision, raw); `volume` nullable (Vietcap may send null). Written by hand; the integrator
re-chains it.

Revision ID: 0028_stock_eod_provider
Revises: 0027_crypto_more
Create Date: 2026-12-06 14:00:00
"""

import sqlalchemy as sa

import ingestion_pipelines.storage.types
from ingestion_pipelines.storage.migration_ops import op

revision = "0028_stock_eod_provider"
down_revision = "0027_crypto_more"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stock_eod") as batch:
        batch.add_column(sa.Column("provider", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("prices_adjusted", sa.Boolean(), nullable=True))
        batch.alter_column(
            "volume",
            existing_type=ingestion_pipelines.storage.types.ExactDecimal(),
            nullable=True,
        )


def downgrade() -> None:
    # before this revision a row was raw and had a volume: the others cannot be kept
    op.execute("DELETE FROM stock_eod WHERE prices_adjusted = true OR volume IS NULL")
    with op.batch_alter_table("stock_eod") as batch:
        batch.alter_column(
            "volume",
            existing_type=ingestion_pipelines.storage.types.ExactDecimal(),
            nullable=False,
        )
        batch.drop_column("prices_adjusted")
        batch.drop_column("provider")
