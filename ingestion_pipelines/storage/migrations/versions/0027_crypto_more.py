"""gas_price: Etherscan's gas oracle beside eth_feeHistory (issue 21 §4): its gwei columns, and
`base_fee_wei` nullable (an Etherscan row has no wei base fee; the JSON-RPC rows still need one,
checked per row by eth_gas' hook). Written by hand; the integrator re-chains it.

Revision ID: 0027_crypto_more
Revises: 0026_vn_more
Create Date: 2026-12-06 13:15:00
"""

import sqlalchemy as sa

import ingestion_pipelines.storage.types
from ingestion_pipelines.storage.migration_ops import op

revision = "0027_crypto_more"
down_revision = "0026_vn_more"
branch_labels = None
depends_on = None

GWEI_COLUMNS = ("safe_gwei", "propose_gwei", "fast_gwei", "base_fee_gwei")


def upgrade() -> None:
    with op.batch_alter_table("gas_price") as batch:
        batch.alter_column(
            "base_fee_wei",
            existing_type=ingestion_pipelines.storage.types.ExactDecimal(),
            nullable=True,
        )
        for name in GWEI_COLUMNS:
            batch.add_column(
                sa.Column(name, ingestion_pipelines.storage.types.ExactDecimal(), nullable=True)
            )


def downgrade() -> None:
    op.execute("DELETE FROM gas_price WHERE base_fee_wei IS NULL")
    with op.batch_alter_table("gas_price") as batch:
        for name in reversed(GWEI_COLUMNS):
            batch.drop_column(name)
        batch.alter_column(
            "base_fee_wei",
            existing_type=ingestion_pipelines.storage.types.ExactDecimal(),
            nullable=False,
        )
