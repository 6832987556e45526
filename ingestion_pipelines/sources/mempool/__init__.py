"""mempool.space-compatible APIs (`btc_chain`, declared in defs/btc_chain/defs.yaml): the hook
combining one poll's four answers into one row, its replay, recordings and expected values."""
