"""btc_chain: a failing request fails the poll with no half row; an older answer without
`previousTime`; the tip height as text only."""

import pytest

from ingestion_pipelines.sources.mempool.replay import (
    DIFFICULTY_PATH,
    MEMPOOL_PATH,
    TIP_HEIGHT_PATH,
)
from ingestion_pipelines.storage import tables
from ingestion_pipelines_tests.sources.conftest import failure_message


@pytest.mark.parametrize("path", [MEMPOOL_PATH, DIFFICULTY_PATH])
def test_a_failing_request_fails_the_poll_naming_its_url_and_writes_nothing(crawler, path):
    crawler.server.faults.add(path, 404, times=None)
    crawl = crawler.run("btc_chain", expect_success=False)
    message = failure_message(crawl)
    assert "btc_chain" in message and crawler.server.url + path in message
    assert crawler.rows(tables.metadata.tables["btc_chain_stat"]) == []


def test_the_2025_answers_without_previous_time(crawler):
    crawler.server.dataset.chain_answers.serve(TIP_HEIGHT_PATH, "blocks_tip_height_2025-01.txt")
    crawler.server.dataset.chain_answers.serve(
        DIFFICULTY_PATH, "v1_difficulty_adjustment_2025-01_excerpt.json"
    )
    crawler.run("btc_chain")
    (row,) = crawler.rows(tables.metadata.tables["btc_chain_stat"])
    assert row["tip_height"] == 877126 and row["previous_retarget_at"] is None
    assert str(row["difficulty_progress_pct"]) == "7.738095238095238"
    assert row["estimated_retarget_at"].isoformat() == "2025-01-12T07:16:32.720000+00:00"


@pytest.mark.parametrize("body", [b"877126.5", b"-1", b'{"height": 877126}', b""])
def test_a_tip_height_that_is_not_a_bare_integer_fails_the_poll(crawler, body):
    crawler.server.dataset.chain_answers[TIP_HEIGHT_PATH] = (body, "text/plain")
    crawl = crawler.run("btc_chain", expect_success=False)
    assert "tip height is not a decimal integer" in failure_message(crawl)
    assert crawler.rows(tables.metadata.tables["btc_chain_stat"]) == []
