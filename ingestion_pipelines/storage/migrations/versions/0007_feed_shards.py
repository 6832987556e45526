"""sidecar shards (reserved)

Revision ID: 0007
Revises: 0006
"""

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Reserved: filled in by the change that owns this revision."""


def downgrade() -> None:
    """Reserved: filled in by the change that owns this revision."""
