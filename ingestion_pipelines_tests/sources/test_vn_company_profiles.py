"""vn_company_profiles against its replay: the GraphQL request it sends per listed stock, and the
answers that must fail a run rather than store nothing silently (a GraphQL `errors` list, a null
profile). The stored values themselves are the standard tests' (`expect:` in its defs.yaml)."""

from __future__ import annotations

from sqlalchemy import insert

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


def test_a_null_profile_fails_the_run(crawler):
    _seed(crawler)
    crawler.server.faults.add(PATH, 200, body={"data": {"CompanyListingInfo": None}}, times=None)
    crawl = crawler.run(WORKER, expect_success=False)
    assert "data.CompanyListingInfo" in failure_message(crawl)
