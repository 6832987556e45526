from datetime import UTC, datetime

import feedparser

from ingestion_pipelines.sources.news.rss import published, text_and_image


def entry(pub_date: str):
    return feedparser.parse(
        f"<rss version='2.0'><channel><item><title>t</title><link>https://x.vn/a</link>"
        f"<pubDate>{pub_date}</pubDate></item></channel></rss>"
    ).entries[0]


def test_rfc822_dates_keep_their_offset_and_become_utc():
    assert published(entry("Tue, 24 Nov 2026 00:05:00 +0700")) == datetime(
        2026, 11, 23, 17, 5, tzinfo=UTC
    )


def test_other_date_formats_fall_back_to_feedparser():
    assert published(entry("2026-11-24T00:05:00+07:00")) == datetime(
        2026, 11, 23, 17, 5, tzinfo=UTC
    )


def test_an_unreadable_date_is_passed_on_raw_for_the_dead_letter():
    assert published(entry("hôm qua")) == "hôm qua"


def test_descriptions_become_plain_text_with_their_image():
    html = '<a href="https://x.vn/a"><img src="https://img.vn/1.jpg" ></a></br>Giá &amp; lãi <b>tăng</b>'
    assert text_and_image(html) == ("Giá & lãi tăng", "https://img.vn/1.jpg")
