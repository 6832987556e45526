"""LyngSat: satellite pages behind an anti-bot challenge (region pages → satellite pages →
transponders and channels), declared in defs/lyngsat/defs.yaml: `source.py` (its hook, owning
its asset), `crawl.py`, `pages.py`, `replay.py`."""
