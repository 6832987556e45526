"""feed_fence: fencing tokens checked inside each sidecar commit

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa

import ingestion_pipelines.storage.types
from ingestion_pipelines.storage.migration_ops import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_fence",
        sa.Column("feed_id", sa.String(length=64), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("feed_id", name=op.f("pk_feed_fence")),
    )


def downgrade() -> None:
    op.drop_table("feed_fence")
