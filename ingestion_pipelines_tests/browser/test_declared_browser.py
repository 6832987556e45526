"""`fetch: browser` on Debian's Chromium: a YAML declaration whose page builds its table with
JavaScript (a captured LyngSat page written into the document by a script, so plain HTTP sees
no row) lands, through the engine, exactly the rows the Python parser reads from the captured
page; a page whose rows never appear fails the run naming the worker and URL, with a
screenshot and the rendered HTML kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from ingestion_pipelines.browser.resource import BrowserResource
from ingestion_pipelines.config import workers
from ingestion_pipelines.http_client.resource import HttpClientResource
from ingestion_pipelines.sources import declared
from ingestion_pipelines.sources.base import SourceError
from ingestion_pipelines.sources.declared import source_class
from ingestion_pipelines.sources.declared_browser import fetch_session
from ingestion_pipelines.sources.runner import crawl
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.declared import Declaration, declared_table
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema
from ingestion_pipelines.storage.schema_base import extra_column
from ingestion_pipelines_tests.fakes.http_origin import HttpOrigin, Reply
from ingestion_pipelines_tests.sources.test_declared_html import DATA, DECLARATION, python_rows

PAGE = "Amos-3-7.html"


def scripted(body: bytes) -> bytes:
    """A page whose whole document is built by JavaScript (once the shell has loaded) from the
    captured page's text: the served HTML holds no row."""
    text = json.dumps(body.decode("cp1252")).replace("</", "<\\/")
    script = f"addEventListener('DOMContentLoaded', () => {{ document.documentElement.innerHTML = {text}; }});"
    return f"<html><head><title>loading</title><script>{script}</script></head><body></body></html>".encode()


@pytest.fixture
def browser_source(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(declared, "_MADE", dict(declared._MADE))
    monkeypatch.setattr(workers, "_registry", dict(workers.catalogue()))
    attributes = yaml.safe_load(DECLARATION)
    attributes.update(worker_id="html_browser_example", fetch="browser")
    attributes["html"]["wait_for"] = "td.td-copyright"
    declaration = Declaration(tmp_path, attributes)
    table = declared_table(declaration, tables.metadata, extra_column)
    yield source_class(declaration)
    tables.metadata.remove(table)
    dispose_all()


def run(source, origin: HttpOrigin, url: str, browser: BrowserResource):
    settings = source.Settings(base_url=origin.url(""), page=PAGE, rate_limit_per_s=None)
    engine = ensure_schema(url)
    source.table.create(engine, checkfirst=True)
    instance = source(settings)
    with (
        HttpClientResource(redis_url="").session(source.worker_id, impersonate=None) as http,
        fetch_session(instance, http, browser, "run-1") as session,
    ):
        return crawl(instance, session=session, data_engine=engine, control_engine=engine)


def browser_resource(tmp_path: Path, **overrides) -> BrowserResource:
    # the captured page's ads and CDN scripts are unreachable here: not waited for
    return BrowserResource(
        block_third_party=True, artifacts_url=str(tmp_path / "artifacts"), **overrides
    )


def test_a_table_built_by_javascript_is_read_from_the_rendered_page(
    browser_source, sqlite_url, tmp_path
):
    captured = (DATA / PAGE).read_bytes()
    with HttpOrigin() as origin:
        origin.set(f"/{PAGE}", Reply(200, scripted(captured), {"Content-Type": "text/html"}))
        result = run(browser_source, origin, sqlite_url, browser_resource(tmp_path))
    assert (result.fetched, result.rejected) == (48, 0)
    with ensure_schema(sqlite_url).connect() as conn:
        rows = [dict(r) for r in conn.execute(select(browser_source.table)).mappings()]
    read = {
        (r["frequency_mhz"], r["polarization"], r["beam"], r["symbol_rate"], r["fec"]) for r in rows
    }
    assert read == python_rows(PAGE, captured)
    assert any(r["provider"] == "România TV" for r in rows)  # decoded by Chromium, handed as UTF-8


def test_plain_http_sees_no_row_of_that_page(browser_source, sqlite_url, tmp_path):
    attributes = {**browser_source.spec.model_dump(exclude_none=True), "fetch": "http"}
    attributes["worker_id"] = "html_http_example"
    source = source_class(Declaration(tmp_path, attributes))
    with HttpOrigin() as origin:
        body = scripted((DATA / PAGE).read_bytes())
        origin.set(f"/{PAGE}", Reply(200, body, {"Content-Type": "text/html"}))
        with pytest.raises(
            SourceError, match="the page is unreadable: satellite: .loading. does not match"
        ):
            run(source, origin, sqlite_url, browser_resource(tmp_path))


def test_rows_that_never_appear_fail_the_run_with_evidence(browser_source, sqlite_url, tmp_path):
    page = b"<html><head><title>Amos 3/7 at 4.0\xb0W</title></head><body>no table</body></html>"
    browser = browser_resource(tmp_path, selector_timeout_s=1.0)
    with HttpOrigin() as origin:
        origin.set(f"/{PAGE}", Reply(200, page, {"Content-Type": "text/html"}))
        with pytest.raises(SourceError) as failed:
            run(browser_source, origin, sqlite_url, browser)
    message = str(failed.value)
    assert "html_browser_example: GET " in message and f"/{PAGE}: browser:" in message
    shots = list((tmp_path / "artifacts").rglob("*.png"))
    assert shots and shots[0].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert list((tmp_path / "artifacts").rglob("*.html"))
