"""crypto_news: sites from the configured feeds, tracking parameters out of links, the mirror."""

from ingestion_pipelines.replay.routes import read_data
from ingestion_pipelines.sources.declared import load_declared_sources
from ingestion_pipelines.sources.news.crypto import site_name, without_tracking
from ingestion_pipelines.sources.news.replay import COINTELEGRAPH_PATH
from ingestion_pipelines.storage import tables

STORY = "https://cointelegraph.com/news/what-happened-in-crypto-today"
CryptoNews = load_declared_sources()["crypto_news"]  # defs/crypto_news, hook news.crypto


def test_site_names_and_tracking_parameters():
    assert site_name("https://www.coindesk.com/arc/outboundfeeds/rss/") == "coindesk"
    assert site_name("https://decrypt.co/feed") == "decrypt"
    link = "https://www.coindesk.com/a/?utm_medium=referral&id=7&utm_source=rss&UTM_campaign=x"
    assert without_tracking(link) == "https://www.coindesk.com/a/?id=7"


def test_feeds_are_read_from_the_mirror_at_their_host_and_path():
    settings = CryptoNews.Settings(base_url="http://mirror:81/m")
    requests = list(CryptoNews(settings).build_requests())
    assert [r.url(settings.base_url) for r in requests] == [
        "http://mirror:81/m/www.coindesk.com/arc/outboundfeeds/rss/",
        "http://mirror:81/m/cointelegraph.com/rss",
        "http://mirror:81/m/decrypt.co/feed",
    ]
    assert [r.url("") for r in CryptoNews(CryptoNews.Settings()).build_requests()] == (
        CryptoNews.Settings().feeds
    )


def test_one_story_under_two_trackings_is_one_row(crawler):
    """Cointelegraph's feed of 2026-08-15 (`?utm_source=rss_feed`), then of 2026-08-28 (three
    utm parameters): the story both carry is one row, its link as last sent in `extra`."""
    crawler.server.dataset.set_feed(
        COINTELEGRAPH_PATH, read_data("cointelegraph_rss_2026-08-15.xml")
    )
    crawler.run("crypto_news")
    crawler.server.dataset.set_feed(
        COINTELEGRAPH_PATH, read_data("cointelegraph_rss_2026-08-28.xml")
    )
    crawler.run("crypto_news")
    rows = {r["url"]: r for r in crawler.rows(tables.news_article)}
    assert len(rows) == 3
    assert rows[STORY]["extra"]["link"].endswith("utm_campaign=rss_partner_inbound")
    assert rows[STORY]["published_at"].day == 28
