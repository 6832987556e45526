"""typed source fields and an extra JSON column on every data table (reserved)

Revision ID: 0004
Revises: 0003
"""

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Reserved: filled in by the change that owns this revision."""


def downgrade() -> None:
    """Reserved: filled in by the change that owns this revision."""
