"""Tables of the datasets added in issues 19 and 21 that are written by Python sources or
derived assets (the YAML sources declare theirs in their defs.yaml), in the one metadata of
`storage.tables`: adjusted prices, financial statements."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, Index, Integer, String, Table

from ingestion_pipelines.storage.schema_base import extra_column, metadata
from ingestion_pipelines.storage.types import ExactDecimal, UtcDateTime

# ---- adjusted prices (issue 19 item 7, vn_stock_eod_adjusted; migration 0022) -------------------
# `stock_eod` adjusted backward for `corporate_event` (derived.stock_eod_adjusted): prices in VND
# (not thousands), volume in adjusted shares; `factor`/`share_factor` the backward factors applied
# (rounded to 18 places); `provider` the provider of the raw prices; `provider_adjusted_close` the
# provider's own adjusted close in VND, for the reconciliation. Never written into `stock_eod`.
stock_eod_adjusted = Table(
    "stock_eod_adjusted",
    metadata,
    Column("symbol", String(32), primary_key=True),
    Column("trade_date", Date, primary_key=True),  # ICT trading day
    Column("provider", String(16), nullable=False),
    Column("exchange", String(16)),
    Column("open", ExactDecimal, nullable=False),
    Column("high", ExactDecimal, nullable=False),
    Column("low", ExactDecimal, nullable=False),
    Column("close", ExactDecimal, nullable=False),
    Column("volume", ExactDecimal, nullable=False),
    Column("factor", ExactDecimal, nullable=False),
    Column("share_factor", ExactDecimal, nullable=False),
    Column("provider_adjusted_close", ExactDecimal),
    extra_column(),
    Index(None, "trade_date"),
)
# ---- end of adjusted prices ---------------------------------------------------------------------

# Bitcoin chain statistics (`btc_chain_stat`, migration 0023_btc_chain) are declared in
# defs/btc_chain/defs.yaml.

# ---- financial statements (issue 19 item 4, vn_financial_statements; migration 0021) -----------
# Long form: one row per line item per period, so a new line item is a new row, never a
# migration. `value` is whole VND as the provider sends it (exact; NULL where it sends null).
# `fiscal_quarter` is 1-4 for a quarter and 0 for a year (a key column cannot hold NULL);
# `fiscal_date` is the period's end as sent; `modified_date` the provider's own modifiedDate, verbatim.
financial_statement = Table(
    "financial_statement",
    metadata,
    Column("symbol", String(32), primary_key=True),
    Column("statement", String(16), primary_key=True),  # income / balance_sheet / cash_flow
    Column("period_type", String(8), primary_key=True),  # quarter / year
    Column("fiscal_year", Integer, primary_key=True, autoincrement=False),
    Column("fiscal_quarter", Integer, primary_key=True, autoincrement=False),  # 0: the year
    Column("item_code", String(32), primary_key=True),
    Column("provider", String(16), primary_key=True),
    Column("fiscal_date", Date, nullable=False),
    Column("item_name_vi", String(512)),
    Column("item_name_en", String(512)),
    Column("value", ExactDecimal),
    Column("modified_date", String(32)),
    extra_column(),
)

# The value a restatement replaced (storage.upsert's `History`): the row's key, its value,
# modified_date and extra before the update, when and by which run it was replaced.
financial_statement_history = Table(
    "financial_statement_history",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("symbol", String(32), nullable=False),
    Column("statement", String(16), nullable=False),
    Column("period_type", String(8), nullable=False),
    Column("fiscal_year", Integer, nullable=False),
    Column("fiscal_quarter", Integer, nullable=False),
    Column("item_code", String(32), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("value", ExactDecimal),
    Column("modified_date", String(32)),
    Column("replaced_at", UtcDateTime, nullable=False),
    Column("run_id", String(64)),
    extra_column(),  # the replaced version's extra
    Index(None, "symbol", "statement", "fiscal_year", "item_code"),
)
# ---- end of financial statements ----------------------------------------------------------
