"""utf8mb4 on MySQL/MariaDB tables (reserved)

Revision ID: 0003
Revises: 0002
"""

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Reserved: filled in by the change that owns this revision."""


def downgrade() -> None:
    """Reserved: filled in by the change that owns this revision."""
