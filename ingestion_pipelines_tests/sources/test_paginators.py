"""The declared sources' paginators follow what the server returned, never the size asked for."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

from ingestion_pipelines.sources.base import Request, Window
from ingestion_pipelines.sources.paginators import PaginatorSpec

NO_HEADERS = SimpleNamespace(headers={})


def first(paginator, window=None) -> list[Request]:
    return list(paginator.firsts(Request("/items", params={"size": 100}), window))


def test_page_number_counts_the_records_received_against_the_total():
    paginator = PaginatorSpec.of({"kind": "page_number", "total": "total"}).build()
    (request,) = first(paginator)
    assert request.params == {"size": 100, "page": 1}
    # the server capped the page at 40 records: the next page is still asked for
    second = paginator.follow(request, NO_HEADERS, {"total": 90}, [{}] * 40)
    assert second.params["page"] == 2 and second.meta["received"] == 40
    third = paginator.follow(second, NO_HEADERS, {"total": 90}, [{}] * 40)
    assert third.params["page"] == 3
    assert paginator.follow(third, NO_HEADERS, {"total": 90}, [{}] * 10) is None
    assert paginator.follow(request, NO_HEADERS, {"total": 90}, []) is None


def test_page_number_stops_at_max_pages_even_when_pages_are_full():
    paginator = PaginatorSpec.of({"kind": "page_number", "max_pages": "2"}).build()
    (request,) = first(paginator)
    second = paginator.follow(request, NO_HEADERS, [], [{}] * 100)
    assert second is not None and paginator.follow(second, NO_HEADERS, [], [{}] * 100) is None


def test_offset_advances_by_the_records_returned():
    paginator = PaginatorSpec.of({"kind": "offset", "total": "count"}).build()
    (request,) = first(paginator)
    following = paginator.follow(request, NO_HEADERS, {"count": 100}, [{}] * 30)
    assert following.params["offset"] == 30
    assert paginator.follow(following, NO_HEADERS, {"count": 60}, [{}] * 30) is None


def test_cursor_and_link_header():
    cursor = PaginatorSpec.of({"kind": "cursor", "path": "meta.next", "param": "after"}).build()
    (request,) = first(cursor)
    assert (
        cursor.follow(request, NO_HEADERS, {"meta": {"next": "abc"}}, [{}]).params["after"] == "abc"
    )
    assert cursor.follow(request, NO_HEADERS, {"meta": {"next": None}}, [{}]) is None
    link = PaginatorSpec.of({"kind": "link_header"}).build()
    response = SimpleNamespace(headers={"link": '<https://x.test/items?page=2>; rel="next"'})
    assert link.follow(request, response, [], [{}]).path == "https://x.test/items?page=2"
    assert link.follow(request, NO_HEADERS, [], [{}]) is None


def test_date_windows_cut_the_run_window():
    paginator = PaginatorSpec.of({"kind": "date_windows", "days": 30}).build()
    window = Window(date(2024, 1, 1), date(2024, 3, 1), "UTC")
    spans = [(r.params["from"], r.params["to"]) for r in first(paginator, window)]
    assert spans == [("2024-01-01", "2024-01-30"), ("2024-01-31", "2024-02-29")]


def test_an_unknown_paginator_or_argument_is_refused():
    for declared in ({"kind": "pages"}, {"kind": "offset", "limit_param": "n"}):
        try:
            PaginatorSpec.of(declared)
        except ValueError as exc:
            assert "unknown" in str(exc)
        else:
            raise AssertionError(f"accepted {declared}")


def test_a_recorded_replay_capping_its_pages_is_still_read_to_the_end(crawler):
    crawler.server.dataset.recorded["coingecko_markets"].page_cap = 100  # per_page asks 250
    crawl = crawler.run("coingecko_markets")
    assert crawl.metadata["records_fetched"] == 295
    assert len(crawler.server.requests_for("/api/v3/coins/markets")) == 4  # 100+100+95, then []
