"""LyngSat: satellite pages behind an anti-bot challenge (region pages → satellite pages →
transponders and channels): `source.py` (the worker), `crawl.py`, `pages.py`, `replay.py`."""
