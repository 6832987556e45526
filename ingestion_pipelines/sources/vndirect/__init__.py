"""VNDIRECT's public finfo API: the financial statements worker written in Python (the listing
and the daily prices are declared in YAML under defs/); the finfo replay (its daily-price
simulator, the statements) and the expected values of its Python worker."""
