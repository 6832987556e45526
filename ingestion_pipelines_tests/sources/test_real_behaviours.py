"""The crawls against servers that behave as the real ones do (replay options), and against the
payload variants captured from the live services (each family's data/PROVENANCE.md)."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from ingestion_pipelines.replay.dataset import read_data, read_variant
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.types import json_text
from ingestion_pipelines_tests.sources.test_sources import nav_day

FILTER = "/res/products/filter"


def verbatim(value):
    """`value` as `extra` keeps it: JSON, numbers with a fraction as their exact text."""
    return json.loads(json_text(json.loads(json.dumps(value), parse_float=Decimal)))


def test_a_server_capping_its_pages_still_gives_every_fund_and_says_so(crawler):
    crawler.server.dataset.fmarket_page_cap = 5
    crawl = crawler.run("fmarket_funds")
    assert crawl.metadata["records_fetched"] == crawl.metadata["records_expected"] == 58
    assert len(crawler.rows(tables.fund)) == 58
    assert len(crawler.server.requests_for(FILTER, "POST")) == math.ceil(58 / 5)
    checks = {c.check_name: c.passed for c in crawl.result.get_asset_check_evaluations()}
    assert checks["complete"] is True


def test_fmarket_nav_requests_the_history_of_every_fund_behind_a_page_cap(crawler):
    crawler.server.dataset.fmarket_page_cap = 7
    day = nav_day(crawler.server)
    crawler.run("fmarket_nav", day.isoformat())
    history = crawler.server.requests_for("/res/product/get-nav-history", "POST")
    assert len({r.json()["productId"] for r in history}) == 58


def test_a_history_endpoint_over_returning_writes_only_the_runs_days(crawler):
    crawler.server.dataset.nav_history_days_before = 10
    day = nav_day(crawler.server)
    crawl = crawler.run("fmarket_nav", day.isoformat())
    stored = crawler.rows(tables.fund_nav)
    assert stored and {r["nav_date"] for r in stored} == {day}
    assert crawl.metadata["records_out_of_window"] > 0


def test_fear_greed_values_stamped_at_five_utc_are_stored_for_their_utc_day(crawler):
    crawler.server.dataset.fng_stamp_hour = 5  # as in alternative.me's documented example
    day = datetime.now(UTC).date() - timedelta(days=1)
    crawl = crawler.run("fear_greed", day.isoformat())
    (row,) = crawler.rows(tables.fear_greed_index)
    assert crawl.metadata["records_rejected"] == 0
    assert row["index_date"] == day and row["value"] == crawler.server.dataset.fng(day)


def test_the_documented_fear_greed_example_is_stored(crawler):
    crawler.server.faults.add(
        "/fng/", 200, body=read_variant("fng_documented_example.json"), times=None
    )
    crawl = crawler.run("fear_greed", "2019-02-26")
    (row,) = crawler.rows(tables.fear_greed_index)
    assert crawl.metadata["records_rejected"] == 0
    assert (row["index_date"], row["value"], row["classification"]) == (
        date(2019, 2, 26),
        40,
        "Fear",
    )
    assert row["extra"] == {"time_until_update": "68499"}


def test_a_stale_coin_with_last_updated_null_is_stored_in_the_runs_snapshot(crawler):
    crawler.server.dataset.recorded["coingecko_markets"].records = read_variant(
        "coingecko_stale_coin.json"
    )
    crawl = crawler.run("coingecko_markets")
    assert crawl.metadata["records_rejected"] == 0
    rows = {r["coin_id"]: r for r in crawler.rows(tables.crypto_market_snapshot)}
    assert len(rows) == 2 and len({r["captured_at"] for r in rows.values()}) == 1
    stale = rows["bitcoin-cash-sv-old"]
    assert stale["last_updated"] is None and stale["price_usd"] == Decimal("0.00271839")
    assert stale["ath_date"] == datetime(2018, 11, 16, tzinfo=UTC)
    assert rows["bitcoin"]["fully_diluted_valuation"] == Decimal("1928682000000")
    assert rows["bitcoin"]["market_cap_change_24h"] == Decimal("8591306981.853645")


def test_rss_guid_categories_and_other_elements_are_stored(crawler):
    crawler.server.dataset.set_feed("/rss/kinh-doanh.rss", read_data("rss_guid_categories.rss"))
    crawler.run("vnexpress_news")
    (article,) = crawler.rows(tables.news_article)
    assert article["guid"] == "188261124093012345"
    assert article["categories"] == ["Thị trường chứng khoán", "Vĩ mô - Đầu tư"]
    assert article["extra"]["author"] == "toasoan@cafef.vn (Minh Anh)"


def test_a_fund_rows_extra_is_stored_verbatim_and_a_rerun_leaves_it_unchanged(crawler):
    first = crawler.run("fmarket_funds")
    served = {f["id"]: f for f in crawler.server.dataset.funds}
    for row in crawler.rows(tables.fund):
        raw = served[row["fund_id"]]
        assert row["extra"]["productFeeList"] == verbatim(raw["productFeeList"])
        assert row["extra"]["holdingVolume"] == str(raw["holdingVolume"])
        assert row["management_fee"] == Decimal(str(raw["managementFee"]))
    second = crawler.run("fmarket_funds")
    assert second.metadata["records_unchanged"] == first.metadata["records_inserted"] == 58
