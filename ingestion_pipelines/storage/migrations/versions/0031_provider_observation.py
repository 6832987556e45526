"""provider_observation: what the other providers of a multi-provider source said about the rows a
run stored (issue 19 §11, the `providers_agree` reconciliation; sources/declared_reconcile.py).

A new table only: nothing stored before changes. Written by hand; the integrator re-chains it.

Revision ID: 0031_provider_observation
Revises: 0028_stock_eod_provider
Create Date: 2026-12-06 16:40:00
"""

import sqlalchemy as sa

import ingestion_pipelines.storage.types
from ingestion_pipelines.storage.migration_ops import op

revision = "0031_provider_observation"
down_revision = "0030_company_profile"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_observation",
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("row_key", sa.String(length=255), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("column_name", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("fetched_at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=False),
        sa.Column("extra", ingestion_pipelines.storage.types.JsonDocument(), nullable=True),
        sa.PrimaryKeyConstraint(
            "worker_id",
            "row_key",
            "provider",
            "column_name",
            name=op.f("pk_provider_observation"),
        ),
        mysql_charset="utf8mb4",
    )
    with op.batch_alter_table("provider_observation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_provider_observation_worker_id_day"), ["worker_id", "day"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("provider_observation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provider_observation_worker_id_day"))
    op.drop_table("provider_observation")
