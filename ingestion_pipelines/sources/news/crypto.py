"""Crypto news (`crypto_news`, declared in defs/crypto_news/defs.yaml with this module's
`CryptoNews` as its hook): the public RSS 2.0 feeds of major crypto news sites (CoinDesk,
Cointelegraph, Decrypt by default), every 15 minutes, with conditional GETs.

The feeds are full URLs on several hosts. Each row's `source` is the site the configured feed
belongs to (`cointelegraph`, `coindesk`, `decrypt`: the host's name without `www.` and its
top-level domain), its `feed_url` the configured URL. With `base_url` set, every feed is read
from that mirror at `<base_url>/<host><path>` (a caching proxy, or the replay), still stored
under its own site and URL.

Normalisation (documented, FIELDS.md of the staging): the sites decorate their item links with
`utm_*` tracking parameters (Cointelegraph `?utm_source=rss_feed&...`, CoinDesk
`?utm_medium=referral&utm_source=rss&...`); they are removed from `url`, so the same story under
two trackings is one row, and the link as sent is kept in `extra.link`. An item without a
readable `pubDate` is dead-lettered (never stamped with the fetch time).

CryptoPanic (a key-only API) is not read here: see the README's crypto section.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ingestion_pipelines.sources.base import Request
from ingestion_pipelines.sources.news.rss import RssFeeds


def site_name(feed_url: str) -> str:
    """The site a feed URL belongs to: `https://www.coindesk.com/...` is `coindesk`."""
    host = (urlsplit(feed_url).hostname or "").removeprefix("www.")
    labels = host.split(".")
    return labels[-2] if len(labels) >= 2 else host


def without_tracking(link: str) -> str:
    """`link` without its `utm_*` query parameters (the others kept, in order)."""
    parts = urlsplit(link)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_")
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


class CryptoNews(RssFeeds):
    """The code of `crypto_news`: feeds on several sites, read from a mirror when one is set."""

    def build_requests(self):
        """One conditional GET per feed: at the site, or at the mirror when `base_url` is set."""
        for feed in self.settings.feeds:
            path = feed
            if self.settings.base_url and "://" in feed:
                parts = urlsplit(feed)
                path = f"/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")
            yield Request(path, conditional=True, meta={"feed": feed})

    def article(self, article: dict, entry, request) -> dict:
        """Site and feed from the configured feed; tracking parameters out of the link; the
        image of `media:content` (CoinDesk) when the description shows none."""
        feed = request.meta["feed"]
        link = article.get("url")
        article["source"] = site_name(feed)
        article["feed_url"] = feed
        if isinstance(link, str):
            article["url"] = without_tracking(link)
            if article["url"] != link:
                article["link"] = link
        if not article.get("image_url"):
            media = next(
                (m.get("url") for m in entry.get("media_content", []) if m.get("url")), None
            )
            article["image_url"] = media
        return article
