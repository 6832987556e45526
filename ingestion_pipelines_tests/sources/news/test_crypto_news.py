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


TOKEN = "made-up-cryptopanic-token-0123"
CAPTURE = "cryptopanic_free_v1_posts_2025-02-26.json"
PANIC_PATH = "/crypto_news/cryptopanic.com/api/free/v1/posts/"


def test_cryptopanic_posts_become_articles():
    """The published capture (free plan, v1, 2025-02-26): 20 posts, each a valid record."""
    import orjson

    from ingestion_pipelines.sources.news.crypto import cryptopanic_article

    posts = orjson.loads(read_data(CAPTURE))["results"]
    feed = CryptoNews.Settings().cryptopanic_url
    rows = [CryptoNews.record.model_validate(cryptopanic_article(p, feed)).row() for p in posts]
    assert len({r["url"] for r in rows}) == 20 and {r["source"] for r in rows} == {"cryptopanic"}
    first = rows[0]
    assert first["url"] == (
        "https://cryptopanic.com/news/20750357/"
        "Lowes-Companies-Inc-Beats-Expectations-with-11B-Net-Earnings-in-Q4"
    )
    assert first["extra"]["link"].endswith("?mtm_campaign=API-OFA")
    assert first["guid"] == "20750357" and first["categories"] == ["EPS"]
    assert first["published_at"].isoformat() == "2025-02-26T11:20:14+00:00"
    assert first["extra"]["origin"]["domain"] == "tokenist.com"
    assert first["extra"]["votes"]["positive"] == 0 and first["extra"]["kind"] == "news"
    mirana = next(r for r in rows if r["guid"] == "20750365")
    assert mirana["categories"] == ["BTC", "ETH", "USDT", "AVAX", "DAI", "42"]  # each code once
    assert len(mirana["extra"]["currencies"]) == 18  # as tagged, in full


def test_without_a_token_cryptopanic_is_not_asked(crawler):
    crawler.run("crypto_news")
    assert crawler.server.requests_for(PANIC_PATH) == []


def test_with_a_token_cryptopanic_posts_are_stored_and_the_token_never_shown(crawler, monkeypatch):
    monkeypatch.setenv("CRYPTO_NEWS_TEST_PANIC_TOKEN", TOKEN)
    crawler.server.faults.add(PANIC_PATH, 200, body=read_data(CAPTURE), times=None)
    config = {"cryptopanic_token": {"env": "CRYPTO_NEWS_TEST_PANIC_TOKEN"}}
    crawl = crawler.run("crypto_news", run_config=config)
    (sent,) = crawler.server.requests_for(PANIC_PATH, "GET")
    assert sent.query == {"auth_token": TOKEN, "public": "true"}
    rows = [r for r in crawler.rows(tables.news_article) if r["source"] == "cryptopanic"]
    assert len(rows) == 20
    assert {r["feed_url"] for r in rows} == {"https://cryptopanic.com/api/free/v1/posts/"}
    assert TOKEN not in str(crawl.metadata)
    assert all(TOKEN not in str(e.message or "") for e in crawl.result.all_events)
