"""stock and stock_eod tables (reserved)

Revision ID: 0006
Revises: 0005
"""

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Reserved: filled in by the change that owns this revision."""


def downgrade() -> None:
    """Reserved: filled in by the change that owns this revision."""
