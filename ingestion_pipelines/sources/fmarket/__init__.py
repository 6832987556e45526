"""fmarket.vn's daily NAVs (`fmarket_nav`, declared in defs/fmarket_nav/, `nav.NavHistory` its
hook); `replay.py` serves the NAV history at its real path (from a model of the funds its YAML fund
list source replays), `testing.py` the expected values."""
