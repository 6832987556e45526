"""fmarket.vn: the fund list (`fmarket_funds`) and daily NAVs (`fmarket_nav`); `replay.py` serves
both at their real paths, `data/` holds the recordings, `testing.py` the expected values."""
