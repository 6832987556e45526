"""dead letters written once: a fingerprint per letter, unique per worker

A writer that commits a batch and dies before saying so is sent the batch again; the letter's
fingerprint (a hash of what it is) lets the second insert be ignored. Letters written before
this revision keep a NULL fingerprint (NULLs never collide in a unique index).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa

from ingestion_pipelines.storage.migration_ops import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dead_letter", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_dead_letter_worker_id_fingerprint"),
            ["worker_id", "fingerprint"],
            unique=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("dead_letter", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dead_letter_worker_id_fingerprint"))
        batch_op.drop_column("fingerprint")
