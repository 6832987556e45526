"""Binance spot trades (`binance_trades`): `feed.py` speaks the protocol, `replay/` is the
local exchange that speaks it back."""
