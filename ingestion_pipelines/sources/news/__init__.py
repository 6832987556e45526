"""News RSS feeds (`vnexpress_news`, `cafef_news`) over one RSS helper (`rss.py`); their replay
(conditional GET, CafeF's browser check), recordings and expected values."""
