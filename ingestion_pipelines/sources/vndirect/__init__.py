"""VNDIRECT's public finfo API: the hook of `vn_financial_statements` (declared in
defs/vn_financial_statements/, `financial_statements.FinancialStatements`, with Vietcap IQ as its
second provider in `statements_vietcap.py`; the listing and the daily prices are declared in YAML
under defs/ too); the finfo replay (its daily-price simulator, the statements of both providers)
and the expected values of the statements."""
