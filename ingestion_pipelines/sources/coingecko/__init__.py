"""CoinGecko: the crypto market snapshot (`coingecko_markets`); its replay, data and expected values."""
