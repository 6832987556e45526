"""utf8mb4 on MySQL/MariaDB tables

Tables created on a server (or database) whose default charset is latin1 refuse Vietnamese
text (error 1366). This makes utf8mb4 the database's default, so tables created by later
revisions get it too, and converts every table of this schema that is not utf8mb4 yet.
PostgreSQL and SQLite store UTF-8 already: nothing to do there.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa

from ingestion_pipelines.storage.migration_ops import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CHARSET = "utf8mb4"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name not in ("mysql", "mariadb"):
        return
    bind.execute(sa.text(f"ALTER DATABASE CHARACTER SET {CHARSET}"))
    tables = bind.execute(
        sa.text(
            # a collation's name starts with its charset (utf8mb4_general_ci, latin1_swedish_ci)
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' "
            "AND SUBSTRING_INDEX(TABLE_COLLATION, '_', 1) <> :charset"
        ),
        {"charset": CHARSET},
    ).scalars()
    for name in list(tables):
        bind.execute(sa.text(f"ALTER TABLE `{name}` CONVERT TO CHARACTER SET {CHARSET}"))


def downgrade() -> None:
    """Nothing: converting back to a narrower charset could lose text."""
