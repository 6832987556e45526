"""`lyngsat` through Dagster against the replay of captured LyngSat pages behind the JavaScript
challenge: every transponder row lands exactly as the page shows it, counts per satellite, a
rerun changes nothing, an unreadable row is dead-lettered with its HTML, and a page that cannot
be read leaves a screenshot and its HTML and fails the run naming it."""

from decimal import Decimal
from pathlib import Path

import pytest

from ingestion_pipelines.sources.lyngsat.pages import parse_satellite_page
from ingestion_pipelines.storage import tables
from ingestion_pipelines_tests.sources.conftest import failure_message

FAST = {"rate_limit_per_s": 200.0, "concurrency": 4}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def artifacts(tmp_path, monkeypatch):
    folder = tmp_path / "artifacts"
    monkeypatch.setenv("INGEST_ARTIFACTS_URL", str(folder))
    return folder


def served(crawler, name):
    base = crawler.server.base_urls()["lyngsat"]
    pages = crawler.server.dataset.lyngsat_site.pages
    return parse_satellite_page(pages[name], f"{base}/{name}.html", region=None)


def test_every_transponder_row_lands_exactly_and_a_rerun_changes_nothing(crawler, artifacts):
    first = crawler.run("lyngsat", run_config=FAST)
    meta = first.metadata
    stored = crawler.rows(tables.satellite_transponder)
    expected = [t for name in ("Amos-3-7", "Astra-3B") for t in served(crawler, name).transponders]
    key = ("satellite", "frequency_mhz", "polarization", "beam")
    shown = {tuple(t[k] for k in key): t for t in expected}
    got = {tuple(r[k] for k in key): r for r in stored}
    assert got.keys() == shown.keys() and len(got) == 48 + 120
    for k, row in got.items():
        page_row = shown[k]
        assert (row["symbol_rate"], row["fec"], row["system"], row["modulation"]) == (
            page_row["symbol_rate"],
            page_row["fec"],
            page_row["system"],
            page_row["modulation"],
        )
    satellites = {r["satellite"]: r for r in crawler.rows(tables.satellite)}
    assert satellites["Amos-3-7"]["orbital_position"] == Decimal("-4.0")  # 4.0°W
    assert satellites["Astra-3B"]["region"] in ("asia", "europe")
    channels = crawler.rows(tables.satellite_channel)
    assert len(channels) == sum(len(served(crawler, n).channels) for n in ("Amos-3-7", "Astra-3B"))
    per = meta["per_satellite"]
    assert per["Amos-3-7"]["created"] == 48 + len(served(crawler, "Amos-3-7").channels)
    assert per["Astra-3B"]["errors"] == 0 and meta["challenge_clearances"] == 1
    assert meta["browser_navigations"] == 1  # the clearance; every page came over HTTP

    second = crawler.run("lyngsat", run_config=FAST).metadata
    assert second["per_satellite"]["Amos-3-7"] == {
        "created": 0,
        "updated": 0,
        "unchanged": per["Amos-3-7"]["created"],
        "errors": 0,
    }
    assert crawler.rows(tables.satellite_transponder) == stored


def test_an_unreadable_row_is_dead_lettered_with_its_html(crawler, artifacts):
    pages = crawler.server.dataset.lyngsat_site.pages
    pages["Amos-3-7"] = pages["Amos-3-7"].replace(b"27500-5/6<br>", b"27500-five<br>", 1)
    meta = crawler.run("lyngsat", run_config={**FAST, "satellites": ["Amos-3-7.html"]}).metadata
    assert meta["per_satellite"]["Amos-3-7"]["errors"] >= 1
    letters = [dict(r) for r in crawler.rows(tables.dead_letter)]
    bad = next(letter for letter in letters if "symbol_rate" in letter["reason"])
    assert "27500-five" in bad["payload"] and bad["payload"].startswith("<tr>")
    screenshot = Path(bad["context"]["evidence"]["screenshot"])
    assert screenshot.read_bytes().startswith(PNG)
    assert len(crawler.rows(tables.satellite_transponder)) == 47


def test_a_page_that_cannot_be_read_leaves_evidence_and_fails_the_run_naming_it(crawler, artifacts):
    crawler.server.dataset.lyngsat_site.pages["Astra-3B"] = (
        b"<html><head><title>Service unavailable</title></head><body>maintenance</body></html>"
    )
    crawl = crawler.run("lyngsat", run_config=FAST, expect_success=False)
    message = failure_message(crawl)
    assert "lyngsat" in message and "/lyngsat/Astra-3B.html" in message
    assert "names no orbital position" in message
    # the other satellite is written
    assert {r["satellite"] for r in crawler.rows(tables.satellite)} == {"Amos-3-7"}
    (letter,) = [r for r in crawler.rows(tables.dead_letter) if "not read" in r["reason"]]
    evidence = letter["context"]["evidence"]
    assert Path(evidence["screenshot"]).read_bytes().startswith(PNG)
    assert (
        Path(evidence["html"]).read_bytes() == crawler.server.dataset.lyngsat_site.pages["Astra-3B"]
    )
    assert str(artifacts) in evidence["screenshot"]


class NoSolver:
    name = "none"

    def clear(self, url):
        raise AssertionError(f"no challenge expected at {url}")


def test_progress_is_reported_per_satellite(replay, sqlite_url, tmp_path):
    from ingestion_pipelines.browser.artifacts import ArtifactStore
    from ingestion_pipelines.browser.clearance import ClearedFetcher
    from ingestion_pipelines.http_client.resource import HttpClientResource
    from ingestion_pipelines.sources.declared import declared_sources
    from ingestion_pipelines.sources.lyngsat.crawl import LyngsatCrawl
    from ingestion_pipelines.storage.engines import ensure_schema

    replay.dataset.lyngsat_site.gate = None  # no challenge: no browser needed
    settings = declared_sources()["lyngsat"].Settings(
        base_url=replay.base_urls()["lyngsat"], regions=["europe"]
    )
    engine = ensure_schema(sqlite_url)
    seen = []
    with HttpClientResource(redis_url="").session("lyngsat") as http:
        crawl = LyngsatCrawl(
            settings,
            ClearedFetcher(http, NoSolver()),
            None,
            ArtifactStore(str(tmp_path)),
            engine,
            engine,
            progress=lambda done, total: seen.append((done, total)),
            worker_id="lyngsat",
        )
        result = crawl.run()
    assert seen == [(0, 2), (1, 2), (2, 2)]
    assert set(result.satellites) == {"Amos-3-7", "Astra-3B"} and result.clearances == 0
    assert result.metadata()["per_satellite"]["Amos-3-7"]["created"] > 48
