"""providers: the provider recorded per row; index codes as the issue names them

- `index_eod.provider` and `crypto_market_snapshot.provider` (the provider whose answer a row came
  from, `sources/declared_providers.py`). Rows stored before are left NULL: one provider
  (VNDIRECT, CoinGecko) served them, but the column says what a run recorded, not an inference.
- `index_eod.index_code`: VNDIRECT's codes `HNX` and `UPCOM` become `HNXINDEX` and `UPCOMINDEX`
  (the names issue 19 uses; the declaration maps every provider's codes to them). Where a row
  under the new code already exists for the same day, the old-code row is deleted (the new one
  stands). It logs how many rows it renamed and deleted.

Downgrading renames the codes back and drops the columns.

Revision ID: 0025_providers
Revises: 0024_financial_statements
"""

from __future__ import annotations

import sqlalchemy as sa
from loguru import logger

from ingestion_pipelines.storage.migration_ops import op

revision = "0025_providers"
down_revision = "0024_financial_statements"
branch_labels = None
depends_on = None

RENAMED = {"HNX": "HNXINDEX", "UPCOM": "UPCOMINDEX"}  # VNDIRECT's code -> issue 19's name

_index = sa.table("index_eod", sa.column("index_code", sa.String()), sa.column("trade_date"))


def rename_codes(conn, renamed: dict[str, str]) -> tuple[int, int]:
    """Rows renamed and rows deleted (an old-code row whose day the new code already has)."""
    changed = deleted = 0
    code, day = _index.c.index_code, _index.c.trade_date
    for old, new in renamed.items():
        taken = {d for (d,) in conn.execute(sa.select(day).where(code == new))}
        clashing = [d for (d,) in conn.execute(sa.select(day).where(code == old)) if d in taken]
        for start in range(0, len(clashing), 500):
            deleted += conn.execute(
                _index.delete().where(code == old, day.in_(clashing[start : start + 500]))
            ).rowcount
        changed += conn.execute(_index.update().where(code == old).values(index_code=new)).rowcount
    return changed, deleted


def upgrade() -> None:
    for table in ("index_eod", "crypto_market_snapshot"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("provider", sa.String(length=32), nullable=True))
    changed, deleted = rename_codes(op.get_bind(), RENAMED)
    logger.info(
        "0025_providers: index_eod codes renamed on {} rows (HNX->HNXINDEX, UPCOM->UPCOMINDEX), "
        "{} old-code rows deleted where the new code already had the day",
        changed,
        deleted,
    )


def downgrade() -> None:
    rename_codes(op.get_bind(), {new: old for old, new in RENAMED.items()})
    for table in ("index_eod", "crypto_market_snapshot"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("provider")
