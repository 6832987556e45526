"""Expected values of the news workers for the standard tests."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ingestion_pipelines.sources.news.replay import CAFEF_PATH, VNEXPRESS_PATH
from ingestion_pipelines.sources.testing import Standard
from ingestion_pipelines.storage import tables

_PUB_DATE = re.compile(r"(<item>.*?<pubDate>)(.*?)(</pubDate>)", re.S)


def check_feed(source: str, path: str, first_title: str, first_published: datetime):
    """A check that every item of the feed at `path` is stored, one of them in full."""

    def check(crawler, _partition) -> None:
        feed = crawler.server.dataset.feeds[path]
        links = set(re.findall(r"<item>.*?<link>(.*?)</link>", feed.body.decode(), re.S))
        stored = {r["url"]: r for r in crawler.rows(tables.news_article) if r["source"] == source}
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


STANDARD = {
    "vnexpress_news": Standard(
        check_feed(
            "vnexpress_news",
            VNEXPRESS_PATH,
            "Giá vàng miếng SJC lập đỉnh mới 168 triệu đồng mỗi lượng",
            datetime(2026, 11, 23, 10, 32, 10, tzinfo=UTC),
        ),
        break_item(VNEXPRESS_PATH),
        VNEXPRESS_PATH,
        rerun="not_modified",
    ),
    "cafef_news": Standard(
        check_feed(
            "cafef_news",
            CAFEF_PATH,
            "Khối ngoại bất ngờ mua ròng hơn 1.200 tỷ đồng, tập trung gom FPT và MWG",
            datetime(2026, 11, 23, 10, 30, 44, tzinfo=UTC),
        ),
        break_item(CAFEF_PATH),
        CAFEF_PATH,
        rerun="not_modified",
    ),
}
