"""Behaviours of the engine shown on single sources, through Dagster's `materialize` (the
catalogue-wide standard tests are in test_standard.py)."""

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from ingestion_pipelines.sources.fmarket import replay as fmarket
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines_tests.sources.conftest import failure_message


def nav_day(replay) -> date:
    """A weekday whose NAV every fund has published."""
    latest = min(d for f in replay.dataset.specs if (d := replay.dataset.latest_nav_date(f)))
    return fmarket.previous_weekday(latest - timedelta(days=1))


def test_a_30_day_nav_backfill_is_one_run_with_one_request_per_fund(crawler):
    end = nav_day(crawler.server)
    start = end - timedelta(days=29)
    crawl = crawler.run("fmarket_nav", partition_range=(start.isoformat(), end.isoformat()))
    history = crawler.server.requests_for("/res/product/get-nav-history", "POST")
    assert len(history) == 58
    assert {(r.json()["fromDate"], r.json()["toDate"]) for r in history} == {
        (f"{start:%Y%m%d}", f"{end:%Y%m%d}")
    }
    dataset = crawler.server.dataset
    expected = sum(len(dataset.nav_rows(f, start, end)) for f in dataset.specs)
    assert crawl.metadata["records_inserted"] == expected
    assert len(crawler.rows(tables.fund_nav)) == expected
    assert crawl.metadata["partition_range"] == f"{start}..{end}"


def test_ict_dates_and_utc_times_at_the_day_boundary(crawler):
    dataset = crawler.server.dataset
    funds = [dict(row) for row in dataset.funds]
    late = datetime(2026, 11, 20, 23, 30, tzinfo=fmarket.ICT)  # 16:30 UTC, same calendar day
    funds[0] = {
        **funds[0],
        "productNavChange": {
            **funds[0]["productNavChange"],
            "updateAt": int(late.timestamp() * 1000),
        },
    }
    dataset.funds = funds
    crawler.run("fmarket_funds")
    stored = {r["fund_id"]: r for r in crawler.rows(tables.fund)}
    assert stored[funds[0]["id"]]["figures_updated_at"] == datetime(
        2026, 11, 20, 16, 30, tzinfo=UTC
    )
    nav_day = funds[0]["extra"]["lastNAVDate"]  # the NAV's own day: 00:00 ICT, 17:00 UTC before
    assert stored[funds[0]["id"]]["nav_updated_at"] == datetime.fromtimestamp(nav_day / 1000, UTC)
    assert stored[funds[0]["id"]]["nav_updated_at"].hour == 17

    dataset.set_feed(
        "/rss/kinh-doanh.rss",
        """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Kinh doanh - VnExpress RSS</title><link>https://vnexpress.net/rss/kinh-doanh.rss</link>
<item><title>Tin lúc nửa đêm</title>
<description><![CDATA[ <a href="https://vnexpress.net/tin-luc-nua-dem-1.html"><img src="https://vcdn1-kinhdoanh.vnecdn.net/a.jpg"></a></br>Giá &amp; lãi suất &quot;nóng&quot; đầu ngày. ]]></description>
<pubDate>Tue, 24 Nov 2026 00:05:00 +0700</pubDate>
<link>https://vnexpress.net/tin-luc-nua-dem-1.html</link><guid>https://vnexpress.net/tin-luc-nua-dem-1.html</guid>
</item></channel></rss>""",
    )
    crawler.run("vnexpress_news")
    (article,) = [r for r in crawler.rows(tables.news_article) if r["source"] == "vnexpress_news"]
    assert article["published_at"] == datetime(2026, 11, 23, 17, 5, tzinfo=UTC)
    assert article["summary"] == 'Giá & lãi suất "nóng" đầu ngày.'
    assert article["image_url"] == "https://vcdn1-kinhdoanh.vnecdn.net/a.jpg"


def test_429_and_5xx_are_retried_honouring_retry_after(crawler):
    crawler.server.faults.add("/api/v3/coins/markets", 429, times=1, retry_after=1)
    crawler.server.faults.add("/api/v3/coins/markets", 503, times=1)
    crawl = crawler.run("coingecko_markets")
    assert crawl.metadata["http_requests_by_status"]["429"] == 1
    assert crawl.metadata["http_requests_by_status"]["503"] == 1
    times = [r.time for r in crawler.server.requests_for("/api/v3/coins/markets")]
    assert times[1] - times[0] >= 1.0  # Retry-After: 1 was honoured
    assert crawl.metadata["records_inserted"] == 295


def test_a_bad_record_goes_to_dead_letter_raw_and_the_run_goes_on(crawler):
    dataset = crawler.server.dataset
    funds = [dict(row) for row in dataset.funds]
    funds[5] = {**funds[5], "nav": "not-a-number"}
    dataset.funds = funds
    crawl = crawler.run("fmarket_funds")
    assert crawl.metadata["records_rejected"] == 1 and crawl.metadata["records_inserted"] == 57
    (letter,) = crawler.rows(tables.dead_letter)
    assert letter["worker_id"] == "fmarket_funds" and "nav" in letter["reason"]
    assert (
        '"nav":"not-a-number"' in letter["payload"]
        and f'"id":{funds[5]["id"]}' in letter["payload"]
    )
    assert letter["run_id"] == crawl.result.run_id
    checks = {c.check_name: c.passed for c in crawl.result.get_asset_check_evaluations()}
    assert checks["rejects_within_threshold"] is True


def test_too_many_rejects_fail_the_run_and_write_no_row(crawler):
    dataset = crawler.server.dataset
    funds = [dict(row) for row in dataset.funds]
    funds[1] = {**funds[1], "code": None}
    dataset.funds = funds
    crawl = crawler.run("fmarket_funds", run_config={"reject_threshold": 0.0}, expect_success=False)
    message = failure_message(crawl)
    assert "fmarket_funds: 1 of 58 records rejected" in message and "reject_threshold" in message
    assert crawler.rows(tables.fund) == []
    assert len(crawler.rows(tables.dead_letter)) == 1


def test_a_failing_source_names_worker_url_and_cause(crawler):
    crawler.server.faults.add("/rss/kinh-doanh.rss", 404, times=None)
    crawl = crawler.run("vnexpress_news", expect_success=False)
    message = failure_message(crawl)
    assert "vnexpress_news" in message and f"{crawler.server.url}/rss/kinh-doanh.rss" in message
    assert "404" in message


def test_an_unparseable_response_fails_and_keeps_the_raw_body(crawler):
    crawler.server.faults.add(
        "/api/v3/coins/markets", 200, body=b"<html>maintenance</html>", times=None
    )
    crawl = crawler.run("coingecko_markets", expect_success=False)
    message = failure_message(crawl)
    assert "coingecko_markets" in message and "/api/v3/coins/markets" in message
    assert "JSONDecodeError" in message
    (letter,) = crawler.rows(tables.dead_letter)
    assert letter["payload"] == "<html>maintenance</html>"
    assert crawler.rows(tables.crypto_market_snapshot) == []


def test_fear_greed_metadata_error_is_a_failure(crawler):
    crawler.server.faults.add(
        "/fng/",
        200,
        body={"name": "Fear and Greed Index", "data": [], "metadata": {"error": "Service busy"}},
        times=None,
    )
    partition = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    crawl = crawler.run("fear_greed", partition, expect_success=False)
    assert "metadata.error: Service busy" in failure_message(crawl)


def test_a_workers_data_tables_may_live_in_another_database(crawler, mariadb_url, monkeypatch):
    dataset = crawler.server.dataset
    funds = [dict(row) for row in dataset.funds]
    funds[0] = {**funds[0], "code": None}  # one reject: dead letters stay in the control database
    dataset.funds = funds
    # a secret travels in run config only as the name of a variable of the run's environment
    monkeypatch.setenv("FUNDS_DATABASE_URL", mariadb_url)
    run_config = {"database_url": {"env": "FUNDS_DATABASE_URL"}}
    crawl = crawler.run("fmarket_funds", run_config=run_config)
    assert crawl.metadata["records_inserted"] == 57
    assert crawler.rows(tables.fund) == []
    assert len(crawler.rows(tables.dead_letter)) == 1
    from sqlalchemy import func, select

    from ingestion_pipelines.storage.engines import get_engine

    with get_engine(mariadb_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.fund)).scalar_one() == 57


def test_a_failed_range_run_run_again_fetches_only_what_had_not_committed(crawler):
    """Checkpoints are keyed by worker and range, not run id: a second run of the same range
    (a re-execution, a retry, `ingest trigger`) sends only the requests that had not committed."""
    end = nav_day(crawler.server)
    start = end - timedelta(days=9)
    crawler.server.faults.add("/res/product/get-nav-history", 404, times=1)
    crawler.run(
        "fmarket_nav",
        partition_range=(start.isoformat(), end.isoformat()),
        expect_success=False,
    )
    with ensure_schema(crawler.database_url).connect() as conn:
        committed = conn.execute(select(func.count()).select_from(tables.crawl_checkpoint))
        committed = committed.scalar_one()
    assert committed >= 1  # at least the fund listing, committed before the failure
    first_run = len(crawler.server.requests)
    crawl = crawler.run("fmarket_nav", partition_range=(start.isoformat(), end.isoformat()))
    second_run = len(crawler.server.requests) - first_run
    assert second_run == 1 + 58 - committed  # 58 histories and one listing page, less those done
    assert crawl.metadata["records_fetched"] == len(crawler.rows(tables.fund_nav))
    dataset = crawler.server.dataset
    assert len(crawler.rows(tables.fund_nav)) == sum(
        len(dataset.nav_rows(f, start, end)) for f in dataset.specs
    )
    with ensure_schema(crawler.database_url).connect() as conn:
        assert (
            conn.execute(select(func.count()).select_from(tables.crawl_checkpoint)).scalar_one()
            == 0
        )
