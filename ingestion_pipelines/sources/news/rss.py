"""The RSS news sources' code, the hook of their declarations (defs/vnexpress_news/,
defs/cafef_news/): feedparser for RSS 2.0, HTML descriptions made plain text."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser

import feedparser
from pydantic import Field, field_validator

from ingestion_pipelines.sources.base import Record, Request, SourceError, UtcTime
from ingestion_pipelines.sources.declared import DeclaredSource


class Article(Record):
    """One news article of a feed."""

    url: str = Field(min_length=8, max_length=700, pattern=r"^https?://")
    source: str
    feed_url: str | None = None
    title: str = Field(min_length=1, max_length=1024)
    summary: str | None = None
    image_url: str | None = Field(None, max_length=2048)
    published_at: UtcTime
    guid: str | None = Field(None, max_length=1024)
    categories: list[str] | None = None

    @field_validator("title", "summary")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() if value else value


class _TextAndImage(HTMLParser):
    """Text content and first image of an HTML fragment (descriptions hold `<a><img></a></br>`)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.image: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "img" and self.image is None:
            self.image = dict(attrs).get("src")
        elif tag in ("br", "p", "div"):
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in ("br", "p", "div"):  # VnExpress writes a literal `</br>`
            self.parts.append(" ")

    def handle_data(self, data):
        self.parts.append(data)


def text_and_image(html: str) -> tuple[str, str | None]:
    """The text of an item's HTML description, and the first image it shows."""
    parser = _TextAndImage()
    parser.feed(html or "")
    parser.close()
    return " ".join("".join(parser.parts).split()), parser.image


def published(entry) -> object:
    """`pubDate` as an aware datetime: RFC 822 (`+0700`) first, then feedparser's own parsing of
    the many other formats feeds use (it gives UTC); the raw text if neither can read it, so the
    record goes to dead_letter with it."""
    raw = entry.get("published")
    try:
        return parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        parsed = entry.get("published_parsed")
        return datetime(*parsed[:6], tzinfo=UTC) if parsed else raw


# What feedparser derives from elements read above (or from each other): not fields of the feed.
_READ_OR_DERIVED = {"link", "id", "title", "summary", "description", "published", "tags"}
_DERIVED = {"links", "guidislink"}


def unmapped_entry_fields(entry) -> dict:
    """The entry's other elements as the feed sent them (`author`, `comments`, `enclosures`...),
    without feedparser's derived `*_detail` / `*_parsed` views: they go to `extra`."""
    fields = {
        key: value
        for key, value in entry.items()
        if key not in _READ_OR_DERIVED
        and key not in _DERIVED
        and not key.endswith(("_detail", "_parsed"))
    }
    if enclosures := entry.get("enclosures"):  # feedparser files them under `links`
        fields["enclosures"] = enclosures
    return fields


class RssFeeds(DeclaredSource):
    """The code of an RSS 2.0 news source declared in YAML (``hook: ingestion_pipelines.sources.
    news.rss:RssFeeds`` in its defs.yaml, whose settings name the `feeds`): each configured feed
    fetched with a conditional GET, its items read by feedparser."""

    record = Article

    def build_requests(self):
        """One conditional GET per feed."""
        for feed in self.settings.feeds:
            yield Request(feed, conditional=True, meta={"feed": feed})

    def parse(self, response, request):
        """The items of one feed document; a document that is no feed fails the run."""
        document = feedparser.parse(response.content)
        if document.bozo and not document.entries:
            raise SourceError(f"not an RSS document: {document.bozo_exception}")
        if not document.version:  # well-formed XML that is no feed (an HTML error page)
            raise SourceError("not an RSS or Atom document")
        feed_url = request.url(self.settings.base_url)
        for entry in document.entries:
            html = entry.get("description") or entry.get("summary") or ""
            summary, image = text_and_image(html)
            enclosure = next(
                (e.get("href") for e in entry.get("enclosures", []) if e.get("href")), None
            )
            yield self.article(
                {
                    **unmapped_entry_fields(entry),
                    "url": entry.get("link") or entry.get("id"),
                    "source": self.worker_id,
                    "feed_url": feed_url,
                    "title": entry.get("title"),
                    "summary": summary or None,
                    "image_url": image or enclosure,
                    "published_at": published(entry),
                    "guid": entry.get("id"),
                    "categories": [t["term"] for t in entry.get("tags", []) if t.get("term")]
                    or None,
                    "pub_date": entry.get("published"),
                    "description_html": html,
                },
                entry,
                request,
            )

    def article(self, article: dict, entry, request) -> dict:
        """Hook: a worker's own normalisations of one item (as read above) before validation."""
        return article
