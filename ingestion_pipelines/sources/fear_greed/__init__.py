"""alternative.me's Crypto Fear & Greed Index (`fear_greed`); its replay, data and expected values."""
