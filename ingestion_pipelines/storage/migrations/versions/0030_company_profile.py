"""company_profile: vn_company_profiles, declared in YAML (issue 19 item 3).
Written in the shape `ingest db revision` generates; the integrator re-chains it.

Revision ID: 0030_company_profile
Revises: 0028_stock_eod_provider
Create Date: 2026-12-06 16:30:00
"""

import sqlalchemy as sa

import ingestion_pipelines.storage.types
from ingestion_pipelines.storage.migration_ops import op

revision = "0030_company_profile"
down_revision = "0028_stock_eod_provider"
branch_labels = None
depends_on = None

ICB_CODES = ("icb_code1", "icb_code2", "icb_code3", "icb_code4")
ICB_NAMES = ("icb_name2", "icb_name2_en", "icb_name3", "icb_name3_en", "icb_name4", "icb_name4_en")


def upgrade() -> None:
    op.create_table(
        "company_profile",
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("symbol", sa.String(length=16), nullable=False),
        sa.Column("name_vi", sa.String(length=512), nullable=True),
        sa.Column("name_en", sa.String(length=512), nullable=True),
        sa.Column("short_name", sa.String(length=256), nullable=True),
        sa.Column("exchange", sa.String(length=16), nullable=True),
        sa.Column("company_type", sa.String(length=8), nullable=True),
        *(sa.Column(name, sa.String(length=16), nullable=True) for name in ICB_CODES),
        *(sa.Column(name, sa.String(length=256), nullable=True) for name in ICB_NAMES),
        sa.Column("listed_shares", ingestion_pipelines.storage.types.ExactDecimal(), nullable=True),
        sa.Column(
            "charter_capital", ingestion_pipelines.storage.types.ExactDecimal(), nullable=True
        ),
        sa.Column("listed_on", sa.Date(), nullable=True),
        sa.Column("extra", ingestion_pipelines.storage.types.JsonDocument(), nullable=True),
        sa.PrimaryKeyConstraint("provider", "symbol", name=op.f("pk_company_profile")),
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    op.drop_table("company_profile")
