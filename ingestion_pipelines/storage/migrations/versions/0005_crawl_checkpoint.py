"""crawl checkpoints: the committed requests of a partitioned crawl, so a re-execution resumes

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa

import ingestion_pipelines.storage.types
from ingestion_pipelines.storage.migration_ops import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crawl_checkpoint",
        sa.Column("worker_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("state", ingestion_pipelines.storage.types.JsonValue(), nullable=False),
        sa.Column("committed_at", ingestion_pipelines.storage.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "worker_id", "scope", "request_key", name=op.f("pk_crawl_checkpoint")
        ),
    )


def downgrade() -> None:
    op.drop_table("crawl_checkpoint")
