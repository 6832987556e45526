"""`format: html`: a YAML declaration reading the transponder rows of real captured LyngSat
pages (ISO-8859-1, `sources/lyngsat/data/PROVENANCE.md`) lands, through the engine, exactly the
rows the Python `lyngsat` parser reads; a row that cannot be read is a dead letter with its
reason and HTML; the recorded replay serves the page as the real site does."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
import yaml
from sqlalchemy import select

from ingestion_pipelines.config import workers
from ingestion_pipelines.http_client.resource import HttpClientResource
from ingestion_pipelines.replay.routes import ReplayRequest
from ingestion_pipelines.sources import declared
from ingestion_pipelines.sources.declared import source_class
from ingestion_pipelines.sources.declared_replay import _handler, recorded_payload
from ingestion_pipelines.sources.declared_testing import break_declared, check_declared
from ingestion_pipelines.sources.lyngsat.pages import parse_satellite_page
from ingestion_pipelines.sources.runner import crawl
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.declared import Declaration, declared_table
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema
from ingestion_pipelines.storage.schema_base import extra_column
from ingestion_pipelines_tests.fakes.http_origin import HttpOrigin, Reply

DATA = Path(__file__).resolve().parents[2] / "ingestion_pipelines/sources/lyngsat/data"
PAGES = ("Amos-3-7.html", "Astra-3B.html")
TABLE = "html_example_transponder"

# What a user writes in defs/<worker_id>/defs.yaml (the attributes of a RestSource).
DECLARATION = rf"""
worker_id: html_example
settings: {{base_url: "https://www.lyngsat.com", page: Amos-3-7.html}}
request: {{path: "/{{settings.page}}"}}
format: html
html:
  encoding: iso-8859-1
  tables: "table:has(> tbody > tr > td.td-copyright)"
  skip: 'td.td-copyright, td[width="220"]'
  when_column: 1
  when_pattern: '^\d+(?:\.\d+)?\s*[HVLR]\b'
  page:
    satellite: {{css: title, pattern: '^(.+?) at \d', required: true}}
    position: {{css: title, pattern: ' at (\d+(?:\.\d+)?\s*°\s*[EW])'}}
    last_updated: {{css: td.td-copyright, pattern: 'last updated (\d{{4}}-\d{{2}}-\d{{2}})'}}
  cells:
    frequency_mhz: {{column: 1, line: 0, pattern: '^(\d+(?:\.\d+)?)\s*[HVLR]\b', required: true}}
    polarization: {{column: 1, line: 0, pattern: '^[\d.]+\s*([HVLR])\b', required: true}}
    beam: {{column: 1, css: 'a[href*="footprints"]'}}
    provider: {{column: 3}}
    symbol_rate: {{column: 6, line: 0, pattern: '^(\d+)-(?:\d+/\d+|auto)', strict: true}}
    fec: {{column: 6, line: 0, pattern: '^\d+-(\d+/\d+|auto)'}}
table:
  name: {TABLE}
  columns:
    satellite: string(128) key
    frequency_mhz: decimal key
    polarization: string(1) key
    beam: string(128) key
    position: string(16)
    last_updated: date
    provider: string(256)
    symbol_rate: integer
    fec: string(8)
fields:
  frequency_mhz: {{gt: 0}}
  polarization: {{choices: [H, V, L, R]}}
replay: {{file: Amos-3-7.html}}
expect:
  records: 48
  bad_record: {{replace: ["size=1>30000-2/3<br>8PSK", "size=1>3OOOO-2/3<br>8PSK"]}}
"""


@pytest.fixture
def html_source(tmp_path: Path, monkeypatch):
    """The declared source, out of the catalogue; its table in the metadata while it runs."""
    monkeypatch.setattr(declared, "_MADE", dict(declared._MADE))
    monkeypatch.setattr(workers, "_registry", dict(workers.catalogue()))
    (tmp_path / "data").mkdir()
    shutil.copy(DATA / "Amos-3-7.html", tmp_path / "data")
    declaration = Declaration(tmp_path, yaml.safe_load(DECLARATION))
    table = declared_table(declaration, tables.metadata, extra_column)
    yield source_class(declaration)
    tables.metadata.remove(table)
    dispose_all()


def python_rows(name: str, body: bytes) -> set[tuple]:
    """What the `lyngsat` worker's parser reads from the page."""
    page = parse_satellite_page(body, f"https://www.lyngsat.com/{name}")
    return {
        (t["frequency_mhz"], t["polarization"], t["beam"], t["symbol_rate"], t["fec"])
        for t in page.transponders
    }


def run(source, origin: HttpOrigin, page: str, url: str):
    settings = source.Settings(base_url=origin.url(""), page=page, reject_threshold=1.0)
    engine = ensure_schema(url)
    source.table.create(engine, checkfirst=True)  # a real source's comes from its migration
    with HttpClientResource().session(source.worker_id, impersonate=None) as session:
        return crawl(source(settings), session=session, data_engine=engine, control_engine=engine)


def stored(source, url: str) -> list[dict]:
    with ensure_schema(url).connect() as conn:
        return [dict(r) for r in conn.execute(select(source.table)).mappings()]


def test_the_declared_rows_are_the_python_parsers_rows(html_source, database_url):
    with HttpOrigin() as origin:
        for name in PAGES:  # served as LyngSat serves them: no charset in the header
            body = (DATA / name).read_bytes()
            origin.set(f"/{name}", Reply(200, body, {"Content-Type": "text/html"}))
            result = run(html_source, origin, name, database_url)
            assert result.rejected == 0 and result.fetched == len(python_rows(name, body))
    rows = stored(html_source, database_url)
    for name in PAGES:
        satellite = "Amos 3/7" if name.startswith("Amos") else "Astra 3B"
        read = {
            (r["frequency_mhz"], r["polarization"], r["beam"], r["symbol_rate"], r["fec"])
            for r in rows
            if r["satellite"] == satellite
        }
        assert read == python_rows(name, (DATA / name).read_bytes())
    amos = [r for r in rows if r["satellite"] == "Amos 3/7"]
    assert len(amos) == 48 and len(rows) == 48 + 120
    (first,) = [r for r in amos if (r["frequency_mhz"], r["polarization"]) == (Decimal(10722), "V")]
    assert (first["symbol_rate"], first["fec"], first["beam"]) == (30000, "2/3", "Europe")
    assert str(first["last_updated"]) == "2020-04-09"
    # ISO-8859-1 read right: the degree sign of the title, the "â" of a channel name
    assert first["position"] == "4.0°W"
    assert any(r["provider"] == "România TV" for r in amos)
    assert any(r["frequency_mhz"] == Decimal("12639.7") for r in rows)


class Served:
    """What the standard tests read of a crawl: the replay's dataset and the stored rows."""

    def __init__(self, source, url: str):
        self.server = SimpleNamespace(
            dataset=SimpleNamespace(recorded={source.worker_id: recorded_payload(source)})
        )
        self.url = url

    def rows(self, table):
        with ensure_schema(self.url).connect() as conn:
            return [dict(r) for r in conn.execute(select(table)).mappings()]


def crawl_served(source, served: Served):
    """Serve what the replay answers at the page's path, and crawl it."""
    dataset = served.server.dataset
    answer = _handler(source)(ReplayRequest("GET", "/Amos-3-7.html", {}, {}, b"", 0), dataset)
    assert answer.body == dataset.recorded[source.worker_id].body
    with HttpOrigin() as origin:
        origin.set("/Amos-3-7.html", Reply(answer.status, answer.body, answer.headers))
        return run(source, origin, "Amos-3-7.html", served.url)


def test_the_standard_check_holds_for_the_recorded_page(html_source, sqlite_url):
    served = Served(html_source, sqlite_url)
    result = crawl_served(html_source, served)
    assert (result.fetched, result.rejected) == (48, 0)
    check_declared(html_source)(served, None)  # every stored row is its served record


def test_an_unreadable_row_is_a_dead_letter_with_its_reason_and_html(html_source, sqlite_url):
    served = Served(html_source, sqlite_url)
    break_declared(html_source)(served.server.dataset, None)  # the expect's bad_record
    result = crawl_served(html_source, served)
    assert (result.fetched, result.rejected) == (48, 1)
    assert len(stored(html_source, sqlite_url)) == 47
    with ensure_schema(sqlite_url).connect() as conn:
        (letter,) = conn.execute(select(tables.dead_letter)).mappings()
    assert letter["worker_id"] == "html_example"
    assert "row unreadable: symbol_rate: '3OOOO-2/3' does not match" in letter["reason"]
    payload = orjson.loads(letter["payload"])
    assert "3OOOO-2/3" in payload["__unreadable_row__"]["html"]
    assert payload["frequency_mhz"] == "10722"


def test_the_charset_comes_from_the_header_then_the_page_then_the_declaration():
    from ingestion_pipelines.browser.html_records import decode_html

    latin = "<html><title>România</title></html>".encode("latin-1")
    assert "România" in decode_html(latin, None, "iso-8859-1")  # declared: no header, no meta
    assert "România" in decode_html(latin, "text/html; charset=ISO-8859-1", "utf-8")
    meta = b'<meta charset="iso-8859-1">' + latin
    assert "România" in decode_html(meta, "text/html", "utf-8")
    utf8 = "<title>România</title>".encode()
    assert "România" in decode_html(utf8, "text/html; charset=utf-8", "iso-8859-1")


def test_the_replay_serves_the_recorded_page_as_html(html_source):
    payload = recorded_payload(html_source)
    assert payload.body == (DATA / "Amos-3-7.html").read_bytes()
    assert len(payload.records) == 48 and payload.records[0]["frequency_mhz"] == "10722"
    dataset = SimpleNamespace(recorded={"html_example": payload})
    answer = _handler(html_source)(ReplayRequest("GET", "/Amos-3-7.html", {}, {}, b"", 0), dataset)
    assert answer.status == 200 and answer.body == payload.body
    assert answer.headers["Content-Type"] == "text/html"  # the page's <meta> names its charset


def test_a_list_declared_by_rows_becomes_records(tmp_path: Path, monkeypatch):
    from ingestion_pipelines.sources.declared_html import HtmlBody, page_records, read_page

    html = HtmlBody.model_validate(
        {
            "tables": "ul.coins",
            "rows": "li",
            "cells": {
                "symbol": {"css": "b", "required": True},
                "price": {"css": "span.price"},
                "link": {"css": "a", "attr": "href"},
            },
        }
    )
    body = (
        b'<ul class="coins"><li><b>BTC</b> <span class="price">97000.5</span>'
        b'<a href="/btc">more</a></li><li><span class="price">1</span></li></ul>'
    )
    records = page_records(html, read_page(html, body, "text/html; charset=utf-8"))
    assert records[0] == {"symbol": "BTC", "price": "97000.5", "link": "/btc"}
    assert records[1]["__unreadable_row__"]["errors"] == ["symbol: missing"]


@pytest.mark.parametrize(
    ("change", "refused"),
    [
        ({"html": None}, "`format: html` and an `html` block go together"),
        ({"format": "json"}, "`format: html` and an `html` block go together"),
        ({"format": "json", "html": None, "fetch": "browser"}, "it needs `format: html`"),
    ],
)
def test_a_declaration_mixing_formats_is_refused(change, refused):
    from pydantic import ValidationError

    from ingestion_pipelines.sources.declared_spec import RestSourceSpec

    attributes = {**yaml.safe_load(DECLARATION), **change}
    with pytest.raises(ValidationError, match=refused):
        RestSourceSpec.model_validate({k: v for k, v in attributes.items() if v is not None})
