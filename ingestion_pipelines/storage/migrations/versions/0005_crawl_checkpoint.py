"""crawl checkpoints (reserved)

Revision ID: 0005
Revises: 0004
"""

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Reserved: filled in by the change that owns this revision."""


def downgrade() -> None:
    """Reserved: filled in by the change that owns this revision."""
