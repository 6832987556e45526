"""News RSS feeds (`vnexpress_news`, `cafef_news`: declared in defs/<worker_id>/, `rss.RssFeeds` their
hook); their replay
(conditional GET, CafeF's browser check), recordings and expected values."""
