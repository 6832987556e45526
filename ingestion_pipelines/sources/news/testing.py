"""Expected values of the news workers for the standard tests: every worker declared with the
RSS hook (the feed its declaration reads, checked against its recording) and with the crypto
hook (sources/declared_family.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ingestion_pipelines.sources.declared_family import hooked_sources
from ingestion_pipelines.sources.news.crypto import CryptoNews
from ingestion_pipelines.sources.news.replay import CAFEF_PATH, COINTELEGRAPH_PATH, VNEXPRESS_PATH
from ingestion_pipelines.sources.news.rss import RssFeeds
from ingestion_pipelines.sources.testing import Standard

_PUB_DATE = re.compile(r"(<item>.*?<pubDate>)(.*?)(</pubDate>)", re.S)


# The first item of each recorded site feed (sources/news/data/PROVENANCE.md): its title and date.
FIRST_ITEMS = {
    VNEXPRESS_PATH: (
        "Giá vàng miếng SJC lập đỉnh mới 168 triệu đồng mỗi lượng",
        datetime(2026, 11, 23, 10, 32, 10, tzinfo=UTC),
    ),
    CAFEF_PATH: (
        "Khối ngoại bất ngờ mua ròng hơn 1.200 tỷ đồng, tập trung gom FPT và MWG",
        datetime(2026, 11, 23, 10, 30, 44, tzinfo=UTC),
    ),
}


def check_feed(source, path: str, first_title: str, first_published: datetime):
    """A check that every item of the feed at `path` is stored under the worker's name, one of
    them in full."""

    def check(crawler, _partition) -> None:
        feed = crawler.server.dataset.feeds[path]
        links = set(re.findall(r"<item>.*?<link>(.*?)</link>", feed.body.decode(), re.S))
        rows = crawler.rows(source.table)
        stored = {r["url"]: r for r in rows if r["source"] == source.worker_id}
        assert set(stored) == links
        first = next(r for r in stored.values() if r["title"] == first_title)
        assert first["published_at"] == first_published
        assert first["summary"] and "<" not in first["summary"] and "]]>" not in first["summary"]
        assert first["image_url"].startswith("https://")

    return check


def break_item(path: str):
    """A breaker giving the first item of the feed at `path` an unreadable date."""

    def break_(dataset, _partition) -> None:
        feed = dataset.feeds[path]
        body = _PUB_DATE.sub(r"\1not a date\3", feed.body.decode(), count=1)
        dataset.set_feed(path, body, browser_only=feed.browser_only)

    return break_


def check_crypto(source):
    """A check that Cointelegraph's items are stored under their links without `utm_*`, the link
    as sent in `extra`, one in full (the channel-only CoinDesk and Decrypt documents add
    nothing)."""

    def check(crawler, _partition) -> None:
        body = crawler.server.dataset.feeds[COINTELEGRAPH_PATH].body.decode()
        links = re.findall(r"<link><!\[CDATA\[(.*?)\]\]></link>", body)
        stored = {r["url"]: r for r in crawler.rows(source.table)}
        assert set(stored) == {link.split("?")[0] for link in links} and len(links) == 2
        first = stored["https://cointelegraph.com/news/what-happened-in-crypto-today"]
        assert first["source"] == "cointelegraph"
        assert first["feed_url"] == "https://cointelegraph.com/rss"
        assert first["published_at"] == datetime(2026, 8, 28, 20, 42, 54, tzinfo=UTC)
        assert first["image_url"] == "https://s3-images.ctmedia.io/x.jpg"
        assert first["summary"].startswith("Need to know what happened in crypto today?")
        assert first["categories"] == ["Latest News"]
        assert first["extra"]["link"] == links[0]
        assert first["extra"]["author"] == "Cointelegraph by Zoltan Vardai"

    return check


def feed_standard(source) -> Standard:
    """The Standard of a worker declared with the RSS hook: the one feed its declaration reads
    (its `feeds` setting's default), served from that feed's recording."""
    (path,) = source.Settings.model_fields["feeds"].default
    title, published = FIRST_ITEMS[path]
    check = check_feed(source, path, title, published)
    return Standard(check, break_item(path), path, rerun="not_modified")


def crypto_standard(source) -> Standard:
    """The Standard of a worker declared with the crypto hook (its feeds under the mirror)."""
    check = check_crypto(source)
    return Standard(check, break_item(COINTELEGRAPH_PATH), COINTELEGRAPH_PATH, rerun="not_modified")


STANDARD = {
    **{w: feed_standard(source) for w, source in hooked_sources(RssFeeds).items()},
    **{w: crypto_standard(source) for w, source in hooked_sources(CryptoNews).items()},
}
