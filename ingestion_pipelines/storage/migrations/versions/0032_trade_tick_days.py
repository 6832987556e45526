"""trade_tick by UTC day: `traded_at` joins the primary key, and on MariaDB/MySQL the table is
partitioned by RANGE COLUMNS on it, one partition per UTC day (`storage.partitions`), so that
retention drops an archived day instead of deleting its rows (issue 22's retention goals).

Every database: the key (source, symbol, trade_id) becomes (source, symbol, trade_id, traded_at)
(MariaDB/MySQL refuse a partitioning column outside any unique key). MariaDB/MySQL: existing rows
keep their partitions' days from the oldest row's day (at most `HISTORY_DAYS` back; older rows
go to `p_old`, where retention deletes them by rows) to `DAYS_AHEAD` days after today. On a large
table this rebuilds it (a copy, writers wait): run it in a quiet window, or with an online schema
tool, as the README says. Downgrade removes the partitioning and restores the old key (it fails
if a trade id was stored twice with two times, which the old key could not hold).

Revision ID: 0032_trade_tick_days
Revises: 0031_provider_observation
Create Date: 2026-12-06 23:10:00
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from ingestion_pipelines.storage.migration_ops import op
from ingestion_pipelines.storage.partitions import DAYS_AHEAD, day_partition_clauses

revision = "0032_trade_tick_days"
down_revision = "0031_provider_observation"
branch_labels = None
depends_on = None

HISTORY_DAYS = 400
OLD_KEY = ["source", "symbol", "trade_id"]
NEW_KEY = [*OLD_KEY, "traded_at"]


def _mysql(bind) -> bool:
    return bind.dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    bind = op.get_bind()
    if not _mysql(bind):
        _replace_key(NEW_KEY)
        return
    today = datetime.now(UTC).date()
    oldest = bind.execute(sa.text("SELECT MIN(traded_at) FROM trade_tick")).scalar()
    first = max(oldest.date(), today - timedelta(days=HISTORY_DAYS)) if oldest else today
    first = min(first, today)
    partitions = ", ".join(day_partition_clauses(first, today + timedelta(days=DAYS_AHEAD)))
    op.execute(
        "ALTER TABLE trade_tick DROP PRIMARY KEY,"
        f" ADD CONSTRAINT pk_trade_tick PRIMARY KEY ({', '.join(NEW_KEY)})"
        f" PARTITION BY RANGE COLUMNS (traded_at) ({partitions})"
    )


def downgrade() -> None:
    bind = op.get_bind()
    if not _mysql(bind):
        _replace_key(OLD_KEY)
        return
    op.execute("ALTER TABLE trade_tick REMOVE PARTITIONING")
    op.execute(
        "ALTER TABLE trade_tick DROP PRIMARY KEY,"
        f" ADD CONSTRAINT pk_trade_tick PRIMARY KEY ({', '.join(OLD_KEY)})"
    )


def _replace_key(columns: list[str]) -> None:
    with op.batch_alter_table("trade_tick", recreate="auto") as batch:
        batch.drop_constraint("pk_trade_tick", type_="primary")
        batch.create_primary_key("pk_trade_tick", columns)
