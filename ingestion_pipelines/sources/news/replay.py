"""RSS feeds (VnExpress, CafeF, the crypto sites): recorded documents served with conditional GET.

A feed is served byte for byte from its recording. ``ETag`` is a hash of the bytes and
``Last-Modified`` the channel's ``lastBuildDate`` (or ``pubDate``), so a client that sends
them back gets ``304 Not Modified`` until the document changes. CafeF answers 503 to clients
that do not present a browser User-Agent, as the real site does.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import TYPE_CHECKING

from ingestion_pipelines.replay.routes import (
    ReplayRequest,
    Response,
    dataset_part,
    fallback,
    read_data,
)
from ingestion_pipelines.sources.declared_family import serve_hooked
from ingestion_pipelines.sources.news.crypto import CryptoNews
from ingestion_pipelines.sources.news.rss import RssFeeds

if TYPE_CHECKING:
    from ingestion_pipelines.replay.dataset import ReplayDataset

_CHANNEL_DATE = re.compile(rb"<(lastBuildDate|pubDate)>([^<]+)</\1>")
_BROWSER = re.compile(r"Mozilla/5\.0 .*(Chrome|Firefox|Safari|Edg)/\d", re.IGNORECASE)
_NOT_BROWSER = re.compile(r"python|curl|wget|httpx|aiohttp|okhttp|go-http|java|bot", re.I)

VNEXPRESS_PATH = "/rss/kinh-doanh.rss"
CAFEF_PATH = "/thi-truong-chung-khoan.rss"
# the crypto hook reads its feeds from a mirror at <base_url>/<host><path> (sources/news/crypto.py)
CRYPTO_BASE = "/crypto_news"
COINTELEGRAPH_PATH = CRYPTO_BASE + "/cointelegraph.com/rss"
COINDESK_PATH = CRYPTO_BASE + "/www.coindesk.com/arc/outboundfeeds/rss/"
DECRYPT_PATH = CRYPTO_BASE + "/decrypt.co/feed"
CONTENT_TYPE = "text/xml; charset=utf-8"
BLOCKED_BODY = (
    b"<html><head><title>503 Service Temporarily Unavailable</title></head>"
    b"<body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>"
)


def is_browser(user_agent: str | None) -> bool:
    """True for the User-Agent of a desktop or mobile browser (what curl_cffi impersonates)."""
    ua = user_agent or ""
    return bool(_BROWSER.search(ua)) and not _NOT_BROWSER.search(ua)


@dataclass
class Feed:
    """One RSS document and how its site serves it."""

    body: bytes
    browser_only: bool = False  # answer 503 unless the User-Agent is a browser's (CafeF)
    etag: str = field(init=False)
    last_modified: datetime = field(init=False)

    def __post_init__(self) -> None:
        if isinstance(self.body, str):
            self.body = self.body.encode("utf-8")
        self.etag = '"' + hashlib.sha1(self.body).hexdigest()[:20] + '"'
        self.last_modified = _channel_date(self.body)

    @property
    def last_modified_header(self) -> str:
        """`last_modified` as an HTTP date."""
        return format_datetime(self.last_modified.astimezone(UTC), usegmt=True)

    def not_modified(self, headers: dict[str, str]) -> bool:
        """RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since when both are sent."""
        if_none_match = headers.get("if-none-match")
        if if_none_match is not None:
            tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
            return "*" in tags or self.etag in tags
        since = headers.get("if-modified-since")
        if since:
            try:
                return self.last_modified.replace(microsecond=0) <= parsedate_to_datetime(since)
            except (TypeError, ValueError):
                return False
        return False


def _channel_date(body: bytes) -> datetime:
    head = body.split(b"<item", 1)[0]
    for match in _CHANNEL_DATE.finditer(head):
        try:
            return parsedate_to_datetime(match.group(2).decode().strip())
        except (TypeError, ValueError):
            continue
    return datetime.now(UTC).replace(microsecond=0)


# ---------------------------------------------------------------- routes

serve_hooked(RssFeeds)  # each site's feeds at their real paths
serve_hooked(CryptoNews, CRYPTO_BASE)


class FeedShelf:
    """The feeds served, by path: the recorded documents, or a test's own."""

    def __init__(self) -> None:
        self.feeds: dict[str, Feed] = {
            VNEXPRESS_PATH: Feed(read_data("vnexpress_kinh_doanh.rss")),
            CAFEF_PATH: Feed(read_data("cafef_thi_truong_chung_khoan.rss"), browser_only=True),
            COINTELEGRAPH_PATH: Feed(read_data("cointelegraph_rss_2026-08-28.xml")),
            COINDESK_PATH: Feed(read_data("coindesk_rss_channel_only.xml")),
            DECRYPT_PATH: Feed(read_data("decrypt_feed_channel_only.xml")),
        }

    def set_feed(self, path: str, document: str | bytes, *, browser_only: bool = False) -> Feed:
        """Serve ``document`` at ``path`` (replacing the recording there, if any)."""
        self.feeds[path] = feed = Feed(document, browser_only=browser_only)
        return feed


@dataset_part("news", expose=True)
def feed_shelf(_dataset: ReplayDataset) -> FeedShelf:
    """The news state of a replay dataset."""
    return FeedShelf()


@fallback
def rss_feed(request: ReplayRequest, dataset: ReplayDataset) -> Response | None:
    """The feed recorded at the request's path, with conditional GET; None for another path."""
    feed = dataset.feeds.get(request.path)
    if feed is None:
        return None
    if feed.browser_only and not is_browser(request.headers.get("user-agent")):
        return Response(503, BLOCKED_BODY, {"Content-Type": "text/html"})
    headers = {"ETag": feed.etag, "Last-Modified": feed.last_modified_header}
    if feed.not_modified(request.headers):
        return Response(304, b"", headers)
    return Response(200, feed.body, {"Content-Type": CONTENT_TYPE, **headers})
