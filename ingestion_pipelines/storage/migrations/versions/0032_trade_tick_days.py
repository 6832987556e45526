"""trade_tick by UTC day: `traded_at` joins the primary key, and on MariaDB/MySQL the table is
partitioned by RANGE COLUMNS on it, one partition per UTC day (`storage.partitions`), on
PostgreSQL rebuilt as a table PARTITION BY RANGE on it (`storage.partitions_pg`), so that
retention drops an archived day instead of deleting its rows (issue 22's retention goals).

Every database: the key (source, symbol, trade_id) becomes (source, symbol, trade_id, traded_at)
(MariaDB/MySQL refuse a partitioning column outside any unique key). MariaDB/MySQL: existing rows
keep their partitions' days from the oldest row's day (at most `HISTORY_DAYS` back; older rows
go to `p_old`, where retention deletes them by rows) to `DAYS_AHEAD` days after today. On a large
table this rebuilds it (a copy, writers wait): run it in a quiet window, or with an online schema
tool, as the README says. Downgrade removes the partitioning and restores the old key (it fails
if a trade id was stored twice with two times, which the old key could not hold).

PostgreSQL: a partitioned table cannot be made from a plain one in place, so the table is
renamed, a partitioned `trade_tick` made with the same columns, key name (`pk_trade_tick`, now
with traded_at) and index (`ix_trade_tick_symbol_traded_at`), its partitions made (the DEFAULT
one; one per day, from the oldest row's day at most `HISTORY_DAYS` back to `DAYS_AHEAD` days
after today; `trade_tick_old` for older rows, if any), the rows copied and the old table dropped,
all in the migration's transaction (writers wait for the copy). Downgrade rebuilds a plain table
with the old key the same way. SQLite: only the key.

Revision ID: 0032_trade_tick_days
Revises: 0031_provider_observation
Create Date: 2026-12-06 23:10:00
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from ingestion_pipelines.storage import partitions_pg
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


def _first_day(bind):
    """(the first day partition's day, the oldest row's day or None)."""
    today = datetime.now(UTC).date()
    oldest = bind.execute(sa.text("SELECT MIN(traded_at) FROM trade_tick")).scalar()
    first = max(oldest.date(), today - timedelta(days=HISTORY_DAYS)) if oldest else today
    return min(first, today), oldest.date() if oldest else None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _rebuild_postgres(partitioned=True)
        return
    if not _mysql(bind):
        _replace_key(NEW_KEY)
        return
    today = datetime.now(UTC).date()
    first, _ = _first_day(bind)
    partitions = ", ".join(day_partition_clauses(first, today + timedelta(days=DAYS_AHEAD)))
    op.execute(
        "ALTER TABLE trade_tick DROP PRIMARY KEY,"
        f" ADD CONSTRAINT pk_trade_tick PRIMARY KEY ({', '.join(NEW_KEY)})"
        f" PARTITION BY RANGE COLUMNS (traded_at) ({partitions})"
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and _pg_partitioned(bind):
        _rebuild_postgres(partitioned=False)
        return
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


def _pg_partitioned(bind) -> bool:
    kind = bind.execute(
        sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass('trade_tick')")
    ).scalar()
    return kind == "p"


def _rebuild_postgres(*, partitioned: bool) -> None:
    """trade_tick rebuilt as a partitioned table with the new key (`partitioned`), or as a plain
    one with the old key, keeping its columns, rows and names."""
    bind = op.get_bind()
    first, oldest = _first_day(bind)  # before the rows move to the renamed table
    old = "trade_tick_partitioned" if not partitioned else "trade_tick_plain"
    op.execute(f"ALTER TABLE trade_tick RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_trade_tick TO pk_{old}")
    op.execute(f"ALTER INDEX ix_trade_tick_symbol_traded_at RENAME TO ix_{old}_symbol_traded_at")
    like = f"(LIKE {old} INCLUDING DEFAULTS INCLUDING COMMENTS INCLUDING STORAGE)"
    if partitioned:
        op.execute(f"CREATE TABLE trade_tick {like} PARTITION BY RANGE (traded_at)")
        key = NEW_KEY
        last = datetime.now(UTC).date() + timedelta(days=DAYS_AHEAD)
        for statement in partitions_pg.create_statements(
            "trade_tick", "traded_at", first, last, oldest
        ):
            op.execute(statement)
    else:
        op.execute(f"CREATE TABLE trade_tick {like}")
        key = OLD_KEY
    op.execute(
        f"ALTER TABLE trade_tick ADD CONSTRAINT pk_trade_tick PRIMARY KEY ({', '.join(key)})"
    )
    op.execute("CREATE INDEX ix_trade_tick_symbol_traded_at ON trade_tick (symbol, traded_at)")
    columns = bind.execute(
        sa.text(
            "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute"
            " WHERE attrelid = to_regclass(:t) AND attnum > 0 AND NOT attisdropped"
        ),
        {"t": old},
    ).scalar_one()
    op.execute(f"INSERT INTO trade_tick ({columns}) SELECT {columns} FROM {old}")
    op.execute(f"DROP TABLE {old}")
