"""Binance spot trades (`binance_trades`): `feed.py` speaks the protocol, `replay.py` is the
local exchange that speaks it back."""
