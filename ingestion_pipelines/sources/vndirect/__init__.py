"""VNDIRECT's public API: the stock listing (`vn_stocks`) and end-of-day prices (`vn_stock_eod`);
their replay, recordings and expected values."""
