"""mempool.space-compatible APIs (`btc_chain`): Bitcoin fees, mempool and chain statistics, one
row per poll of four requests; their replay, recordings and expected values."""
