"""The standard tests, generated from the worker catalogue: every source through its replay
(exact values, a rerun that changes nothing, a bad record dead-lettered, a bad payload failing
clearly). A source without a replay route or expected values fails them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ingestion_pipelines.sources import providers_agree
from ingestion_pipelines.sources.base import source_classes
from ingestion_pipelines.storage import tables
from ingestion_pipelines_tests.sources.conftest import failure_message
from ingestion_pipelines_tests.sources.standard import collect

CATALOGUE = source_classes()
STANDARDS, PROBLEMS = collect(CATALOGUE)
BAD_BODY = b"<html>maintenance</html>"


def standard_of(worker_id: str):
    """The worker's Standard, or a failure saying what the worker lacks."""
    if worker_id not in STANDARDS or any(p.startswith(f"{worker_id}:") for p in PROBLEMS):
        pytest.fail("\n".join(p for p in PROBLEMS if p.startswith(f"{worker_id}:")))
    return STANDARDS[worker_id]


def partition_of(standard, crawler) -> str | None:
    """The partition the worker runs, after its seed (the rows its `for_each` reads) is in."""
    if standard.seed is not None:
        standard.seed(crawler)
    return standard.partition(crawler.server.dataset) if standard.partition else None


def test_every_worker_of_the_catalogue_has_a_replay_and_expected_values():
    assert PROBLEMS == []
    assert set(STANDARDS) == set(CATALOGUE) and len(CATALOGUE) >= 8


@pytest.mark.parametrize("worker_id", sorted(CATALOGUE))
def test_stores_exactly_what_the_replay_served_and_a_rerun_changes_nothing(crawler, worker_id):
    standard = standard_of(worker_id)
    partition = partition_of(standard, crawler)
    table = CATALOGUE[worker_id].table
    first = crawler.run(worker_id, partition)
    fetched, inserted, updated, _unchanged, rejected = first.counts
    assert fetched > 0 and inserted > 0 and rejected == 0 and updated == 0
    standard.check(crawler, partition)
    before = crawler.rows(table)

    second = crawler.run(worker_id, partition).metadata
    assert second["records_updated"] == 0
    if standard.rerun == "snapshot":  # a run is a snapshot: a second one, all new rows
        assert second["records_inserted"] == inserted
        assert len(crawler.rows(table)) == 2 * inserted
    else:
        assert second["records_inserted"] == 0 and crawler.rows(table) == before
    if standard.rerun == "not_modified":  # conditional GET: the document was not sent again
        assert second["http_not_modified"] >= 1 and second["records_fetched"] == 0
    elif standard.rerun == "unchanged":
        assert second["records_unchanged"] == inserted
    checks = {c.check_name: c.passed for c in first.result.get_asset_check_evaluations()}
    # `complete` only where the source says its own totals: no green check for saying nothing
    totals = {"complete": True} if CATALOGUE[worker_id].totals else {}
    # `providers_agree` where a declaration has several providers (sources/providers_agree.py)
    agree = {"providers_agree": True} if providers_agree.has_providers(CATALOGUE[worker_id]) else {}
    assert checks == {"rejects_within_threshold": True, "rows_present": True, **totals, **agree}


@pytest.mark.parametrize("worker_id", sorted(CATALOGUE))
def test_a_bad_record_goes_to_dead_letter_and_the_rest_is_written(crawler, worker_id):
    standard = standard_of(worker_id)
    partition = partition_of(standard, crawler)
    standard.bad_record(crawler.server.dataset, partition)
    crawl = crawler.run(worker_id, partition, run_config={"reject_threshold": 1.0})
    assert crawl.metadata["records_rejected"] == 1
    (letter,) = crawler.rows(tables.dead_letter)
    assert letter["worker_id"] == worker_id and letter["reason"] and letter["payload"]
    assert letter["run_id"] == crawl.result.run_id
    stored = crawler.rows(CATALOGUE[worker_id].table)
    assert len(stored) == crawl.metadata["records_inserted"]
    duplicates = crawl.metadata.get("records_duplicate", 0)  # a feed repeating an item
    assert crawl.metadata["records_fetched"] == len(stored) + duplicates + 1


@pytest.mark.parametrize("worker_id", sorted(CATALOGUE))
def test_an_unparseable_payload_fails_the_run_naming_worker_and_url(crawler, worker_id):
    standard = standard_of(worker_id)
    partition = partition_of(standard, crawler)
    crawler.server.faults.add(standard.bad_payload_path, 200, body=BAD_BODY, times=None)
    crawl = crawler.run(worker_id, partition, expect_success=False)
    message = failure_message(crawl)
    assert worker_id in message and crawler.server.url + standard.bad_payload_path in message
    assert crawler.rows(CATALOGUE[worker_id].table) == []


def test_a_source_without_replay_or_expected_values_is_reported_by_the_collector():
    """A throwaway source, declared in a fresh interpreter so the catalogue here stays real."""
    script = textwrap.dedent(
        """
        from ingestion_pipelines.sources.base import Source, source_classes
        from ingestion_pipelines.storage.tables import fund
        from ingestion_pipelines_tests.sources.standard import collect

        class Throwaway(Source):
            worker_id = "throwaway_without_replay"
            table = fund

        standards, problems = collect(source_classes())
        print(sorted(standards))
        print("\\n".join(problems))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == str(sorted(CATALOGUE))
    assert out[1:] == [
        "throwaway_without_replay: no replay route (its family's replay.py registers none: "
        "base_path('throwaway_without_replay') and its routes)",
        "throwaway_without_replay: no expected values "
        "(STANDARD['throwaway_without_replay'] in __main__.testing)",
    ]
