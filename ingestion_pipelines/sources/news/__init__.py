"""News RSS feeds (`vnexpress_news`; `cafef_news`, declared in defs/cafef_news/ with `rss.RssFeeds`
as its hook) over one RSS helper (`rss.py`); their replay
(conditional GET, CafeF's browser check), recordings and expected values."""
