"""vn_more: settings renamed when vn_corporate_events and fmarket_fund_holdings read every stock
and every fund (their one-item settings become subset settings)

Revision ID: 0026_vn_more
Revises: 0025_providers
Create Date: 2026-12-06 13:02:00

An operator's `ticker` of vn_corporate_events becomes `tickers` (a one-stock subset, as before)
and `fund_id` of fmarket_fund_holdings becomes `fund_ids` (its id as text): the workers' runs
stay the same as they were configured, and their settings models, which refuse unknown keys,
keep loading. No table changes.
"""

import sqlalchemy as sa

from ingestion_pipelines.storage.migration_ops import op
from ingestion_pipelines.storage.types import JsonValue

revision = "0026_vn_more"
down_revision = "0025_providers"
branch_labels = None
depends_on = None

RENAMED = {  # worker id: (old key, new key)
    "vn_corporate_events": ("ticker", "tickers"),
    "fmarket_fund_holdings": ("fund_id", "fund_ids"),
}
_config = sa.table(
    "worker_config",
    sa.column("id", sa.BigInteger),
    sa.column("worker_id", sa.String),
    sa.column("key", sa.String),
    sa.column("value", JsonValue),
)


def _rename(old_of, new_of, convert) -> None:
    bind = op.get_bind()
    for worker_id, keys in RENAMED.items():
        old, new = old_of(keys), new_of(keys)
        rows = bind.execute(
            sa.select(_config.c.id, _config.c.value).where(
                _config.c.worker_id == worker_id, _config.c.key == old
            )
        ).all()
        for row_id, value in rows:
            bind.execute(
                sa.update(_config)
                .where(_config.c.id == row_id)
                .values(key=new, value=convert(worker_id, value))
            )


def upgrade() -> None:
    _rename(lambda k: k[0], lambda k: k[1], lambda _w, value: str(value))


def _back(worker_id: str, value):
    first = str(value).split(",")[0].strip()
    return int(first) if worker_id == "fmarket_fund_holdings" else first


def downgrade() -> None:
    _rename(lambda k: k[1], lambda k: k[0], _back)
