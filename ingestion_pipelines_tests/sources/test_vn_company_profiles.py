"""vn_company_profiles against its replay: the GraphQL request it sends per listed stock; one stock
answered without its profile (null, GraphQL field errors, no `issueShare`) is a dead letter naming
it while the others are stored; answers about the query or the endpoint (an `errors` list naming
no field, a login asked, `{}`, an HTTP 403) fail the run naming the URL. The stored values
themselves are the standard tests' (`expect:` in its defs.yaml)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import insert

from ingestion_pipelines.sources.declared import declared_sources
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines_tests.sources.conftest import failure_message

WORKER = "vn_company_profiles"
PATH = "/data-mt/graphql"


def _seed(crawler) -> None:
    with ensure_schema(crawler.database_url).begin() as conn:
        conn.execute(
            insert(tables.stock),
            [
                {"symbol": s, "exchange": "HOSE", "name": s, "type": "STOCK", "status": status}
                for s, status in (("VCB", "listed"), ("OLD", "delisted"))
            ],
        )


def test_one_graphql_request_per_listed_stock_asking_its_ticker(crawler, monkeypatch):
    _seed(crawler)
    monkeypatch.setenv("INGEST_VN_COMPANY_PROFILES__TICKERS", "VCB,OLD")  # the replay's is VCB
    crawl = crawler.run(WORKER)
    asked = crawler.server.requests_for(PATH, "POST")
    assert len(asked) == 1  # VCB; OLD is named but delisted: `where: {status: listed}`
    body = asked[0].json()
    assert body["variables"] == {"ticker": "VCB"}
    assert "CompanyListingInfo(ticker: $ticker)" in body["query"]
    assert "charterCapital" in body["query"] and "TickerPriceInfo" in body["query"]
    (row,) = crawler.rows(tables.metadata.tables["company_profile"])
    assert crawl.counts[:2] == (1, 1)
    assert row["extra"]["id"] == "75836" and "charterCapital" not in row["extra"]["financialRatio"]


def test_a_graphql_error_fails_the_run_naming_it_and_the_url(crawler):
    _seed(crawler)
    errors = {"errors": [{"message": "Cannot query field"}], "data": None}
    crawler.server.faults.add(PATH, 200, body=errors, times=None)
    crawl = crawler.run(WORKER, expect_success=False)
    message = failure_message(crawl)
    assert "Cannot query field" in message and crawler.server.url + PATH in message
    assert crawler.rows(tables.metadata.tables["company_profile"]) == []


def _seed_listed(crawler, monkeypatch, *symbols: str, threshold: str = "0.5") -> None:
    """`symbols` listed and asked, one request at a time in their order (a fault armed once is
    the first one's answer); the reject threshold lets one bad stock of two through."""
    with ensure_schema(crawler.database_url).begin() as conn:
        conn.execute(
            insert(tables.stock),
            [
                {"symbol": s, "exchange": "HOSE", "name": s, "type": "STOCK", "status": "listed"}
                for s in symbols
            ],
        )
    monkeypatch.setenv("INGEST_VN_COMPANY_PROFILES__TICKERS", ",".join(symbols))
    monkeypatch.setenv("INGEST_VN_COMPANY_PROFILES__CONCURRENCY", "1")
    monkeypatch.setenv("INGEST_VN_COMPANY_PROFILES__REJECT_THRESHOLD", threshold)


def _stored_symbols(crawler) -> list[str]:
    return [r["symbol"] for r in crawler.rows(tables.metadata.tables["company_profile"])]


def test_a_stock_without_a_profile_is_a_dead_letter_and_the_rest_is_stored(crawler, monkeypatch):
    _seed_listed(crawler, monkeypatch, "VCB", "XYZ")  # the replay records VCB only: XYZ is null
    crawl = crawler.run(WORKER)
    assert _stored_symbols(crawler) == ["VCB"]
    (letter,) = crawler.rows(tables.dead_letter)
    assert letter["worker_id"] == WORKER
    assert letter["reason"] == "symbol=XYZ: no record at data.CompanyListingInfo (null)"
    assert json.loads(letter["payload"]) == {"data": {"CompanyListingInfo": None}}  # raw body
    assert letter["context"]["record_key"] == {"symbol": "XYZ"}
    assert crawler.server.url + PATH in letter["context"]["url"]
    assert crawl.counts == (2, 1, 0, 0, 1)  # fetched, inserted, updated, unchanged, rejected


def test_a_stock_without_a_profile_still_counts_against_the_reject_threshold(crawler, monkeypatch):
    _seed_listed(crawler, monkeypatch, "VCB", "XYZ", threshold="0.1")
    crawl = crawler.run(WORKER, expect_success=False)
    message = failure_message(crawl)
    assert "1 of 2 records rejected" in message and "symbol=XYZ" in message
    assert [r["reason"][:10] for r in crawler.rows(tables.dead_letter)] == ["symbol=XYZ"]


def test_field_errors_for_one_stock_make_it_a_dead_letter(crawler, monkeypatch):
    # GraphQL's answer when a field's resolver failed: the field null, an error naming its path
    failed = {
        "errors": [
            {
                "message": "Internal server error",
                "locations": [{"line": 2, "column": 3}],
                "path": ["CompanyListingInfo"],
            }
        ],
        "data": {"CompanyListingInfo": None, "TickerPriceInfo": None},
    }
    _seed_listed(crawler, monkeypatch, "AAA", "VCB")
    crawler.server.faults.add(PATH, 200, body=failed, times=1)  # the first asked: AAA
    crawl = crawler.run(WORKER)
    assert _stored_symbols(crawler) == ["VCB"]
    (letter,) = crawler.rows(tables.dead_letter)
    assert letter["reason"] == (
        "symbol=AAA: the source answered errors for it: "
        "Internal server error (at CompanyListingInfo)"
    )
    assert json.loads(letter["payload"]) == failed
    assert crawl.counts[4] == 1


def test_a_profile_without_listed_shares_is_a_dead_letter(crawler, monkeypatch):
    source = declared_sources()[WORKER]
    recorded = source.folder / "data" / source.spec.replay["file"]
    partial = json.loads(recorded.read_bytes())
    del partial["data"]["CompanyListingInfo"]["issueShare"]
    _seed_listed(crawler, monkeypatch, "AAA", "VCB")
    crawler.server.faults.add(PATH, 200, body=partial, times=1)
    crawl = crawler.run(WORKER)
    assert _stored_symbols(crawler) == ["VCB"]
    (letter,) = crawler.rows(tables.dead_letter)
    assert letter["reason"] == "record failed validation: issueShare: Field required"
    assert letter["context"]["record_key"] == {"provider": "vietcap", "symbol": "AAA"}
    assert json.loads(letter["payload"])["id"] == "75836"  # the record as sent
    assert crawl.counts[4] == 1


@pytest.mark.parametrize(
    ("status", "body", "cause"),
    [
        # Vietcap's endpoint switched off: 200 with `{}` for every ticker (a client's note, see
        # data/PROVENANCE.md)
        (200, {}, "expected one record (an object) at data.CompanyListingInfo"),
        # a login asked, even when the error names the field
        (
            200,
            {
                "errors": [
                    {
                        "message": "Unauthorized",
                        "path": ["CompanyListingInfo"],
                        "extensions": {"code": "UNAUTHENTICATED"},
                    }
                ],
                "data": {"CompanyListingInfo": None},
            },
            "UNAUTHENTICATED",
        ),
        (403, "<html><body>403 Forbidden</body></html>", "403"),  # vnstock issue #223
    ],
    ids=["empty-body", "login-asked", "http-403"],
)
def test_an_answer_about_the_source_fails_the_run_naming_the_url(
    crawler, monkeypatch, status, body, cause
):
    _seed_listed(crawler, monkeypatch, "AAA", "VCB")
    crawler.server.faults.add(PATH, status, body=body, times=None)
    crawl = crawler.run(WORKER, expect_success=False)
    message = failure_message(crawl)
    assert cause in message and crawler.server.url + PATH in message
    assert _stored_symbols(crawler) == []
