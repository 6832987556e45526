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

CryptoPanic (a key-only API) is read too **when a token is set** (`cryptopanic_token`, a secret
setting: an `env:NAME` reference): `GET {cryptopanic_url}?auth_token=…&public=true` (default the
free plan's `https://cryptopanic.com/api/free/v1/posts/`, the URL of the one published capture,
`sources/news/data/cryptopanic_free_v1_posts_2025-02-26.json`), through the mirror as the feeds
when `base_url` is set. Each post of `results` is one `news_article` row: `source`
`cryptopanic`, `url` CryptoPanic's post link without its `mtm_*` tracking (the link as sent in
`extra.link`), `guid` the post id, `categories` the codes of its `currencies` (as tagged by
CryptoPanic, in order, each once), `published_at` as sent; the site the post relays
(CryptoPanic's `source` object), `domain`, `kind`, `votes`, `slug`, `created_at` and the
currencies in full stay in `extra` (the `source` object as `extra.origin`). A body without a
`results` list fails the run; the token is in the query only, never shown.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ingestion_pipelines.sources.base import Request, SourceError
from ingestion_pipelines.sources.declared_body import decode_body
from ingestion_pipelines.sources.news.rss import RssFeeds

CRYPTOPANIC = "cryptopanic"
TRACKING_PREFIXES = ("utm_", "mtm_")  # Google's and Matomo's campaign parameters


def site_name(feed_url: str) -> str:
    """The site a feed URL belongs to: `https://www.coindesk.com/...` is `coindesk`."""
    host = (urlsplit(feed_url).hostname or "").removeprefix("www.")
    labels = host.split(".")
    return labels[-2] if len(labels) >= 2 else host


def without_tracking(link: str) -> str:
    """`link` without its `utm_*` and `mtm_*` query parameters (the others kept, in order)."""
    parts = urlsplit(link)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith(TRACKING_PREFIXES)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


class CryptoNews(RssFeeds):
    """The code of `crypto_news`: feeds on several sites, read from a mirror when one is set."""

    def build_requests(self):
        """One conditional GET per feed: at the site, or at the mirror when `base_url` is set;
        then CryptoPanic's posts when a token is set."""
        for feed in self.settings.feeds:
            yield Request(self._at_mirror(feed), conditional=True, meta={"feed": feed})
        token = self.settings.cryptopanic_token
        if token:
            url = self.settings.cryptopanic_url
            yield Request(
                self._at_mirror(url),
                params={"auth_token": token, "public": "true"},
                meta={"feed": url, CRYPTOPANIC: True, "checkpoint": False},
            )

    def _at_mirror(self, url: str) -> str:
        """`url` itself, or its path at the mirror (`/<host><path>`) when `base_url` is set."""
        if not (self.settings.base_url and "://" in url):
            return url
        parts = urlsplit(url)
        return f"/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")

    def parse(self, response, request):
        """RSS documents as the family reads them; CryptoPanic's JSON posts."""
        if not request.meta.get(CRYPTOPANIC):
            yield from super().parse(response, request)
            return
        body = decode_body(response.content, "json")
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise SourceError(f"CryptoPanic's answer has no results list: {str(body)[:200]}")
        for post in results:
            yield cryptopanic_article(post, request.meta["feed"])

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


def cryptopanic_article(post, feed_url: str):
    """One CryptoPanic post as a `news_article` record (see the module's docstring); anything
    but an object is handed on as is, for the record model to refuse."""
    if not isinstance(post, dict):
        return post
    link = post.get("url")
    codes = [c.get("code") for c in post.get("currencies") or [] if isinstance(c, dict)]
    article = {k: v for k, v in post.items() if k not in ("url", "source", "id", "title")}
    article.update(
        {
            "url": without_tracking(link) if isinstance(link, str) else link,
            "source": CRYPTOPANIC,
            "feed_url": feed_url,
            "title": post.get("title"),
            "guid": None if post.get("id") is None else str(post["id"]),
            "categories": list(dict.fromkeys(c for c in codes if c)) or None,
            "origin": post.get("source"),
        }
    )
    if isinstance(link, str) and article["url"] != link:
        article["link"] = link
    return article
