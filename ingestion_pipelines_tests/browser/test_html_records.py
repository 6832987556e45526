"""HTML to records, declared: grid reading, lines, patterns, types, errors, legacy charsets."""

from datetime import date
from decimal import Decimal

import pytest

from ingestion_pipelines.browser.html_records import (
    HtmlSpecError,
    charset_of,
    decode_html,
    extract,
)

TABLE = """<html><head><title>Prices</title></head><body>
<table class="t">
<tr><th>group</th><th>name</th><th>close</th><th>day</th></tr>
<tr><td rowspan=2>A<br>first</td><td>alpha</td><td>1,234.50</td><td>2026-11-20</td></tr>
<tr><td>beta</td><td>7</td><td>2026-11-21</td></tr>
<tr><td colspan=2>gamma wide</td><td>n/a</td><td>2026-11-22</td></tr>
</table></body></html>"""

SPEC = {
    "fields": {"title": {"css": "title", "required": True}},
    "tables": [
        {
            "tables": "table.t",
            "skip": "th",
            "kinds": [
                {
                    "name": "price",
                    "fields": {
                        "group": {"column": 0, "line": 0},
                        "note": {"column": 0, "line": -1},
                        "name": {"column": 1, "required": True},
                        "close": {
                            "column": 2,
                            "type": "decimal",
                            "strict": True,
                            "pattern": r"^([\d,.]+)$",
                        },
                        "day": {"column": 3, "type": "date"},
                    },
                }
            ],
        }
    ],
}


def test_rows_are_read_on_the_grid_rowspan_and_colspan_expanded():
    page = extract(TABLE, SPEC)
    assert page.values == {"title": "Prices"} and page.errors == []
    first, second, third = page.rows
    assert first.values == {
        "group": "A",
        "note": "first",
        "name": "alpha",
        "close": Decimal("1234.50"),
        "day": date(2026, 11, 20),
    }
    # the rowspan cell is under column 0 of the next row too
    assert second.values["group"] == "A" and second.values["name"] == "beta"
    assert second.values["close"] == Decimal("7")
    # a cell spanning two columns is at both
    assert third.values["group"] == third.values["name"] == "gamma wide"


def test_a_value_that_does_not_convert_is_the_rows_error_with_its_html():
    third = extract(TABLE, SPEC).rows[2]
    assert not third.ok
    assert third.errors == ["close: 'n/a' does not match '^([\\\\d,.]+)$'"]
    assert "gamma wide" in third.html and third.html.startswith("<tr>")


def test_kinds_parents_and_when_patterns():
    html = """<table><tr><td>T1</td><td>x</td></tr><tr><td></td><td>c1</td></tr>
    <tr><td>T2</td><td>y</td></tr><tr><td></td><td>c2</td></tr><tr><td></td><td>c3</td></tr></table>"""
    spec = {
        "tables": [
            {
                "kinds": [
                    {
                        "name": "head",
                        "when_column": 0,
                        "when_pattern": r"^T\d$",
                        "fields": {"id": {"column": 0}},
                    },
                    {"name": "child", "parent": "head", "fields": {"v": {"column": 1}}},
                ]
            }
        ]
    }
    page = extract(html, spec)
    heads = page.of_kind("head")
    children = page.of_kind("child")
    assert [h.values["id"] for h in heads] == ["T1", "T2"]
    assert [(page.rows[c.parent].values["id"], c.values["v"]) for c in children] == [
        ("T1", "c1"),
        ("T2", "c2"),
        ("T2", "c3"),
    ]


def test_a_selector_the_parser_refuses_is_a_spec_error():
    with pytest.raises(HtmlSpecError):
        extract("<p>x</p>", {"fields": {"x": {"css": "p[[["}}})


def test_legacy_encodings_decode_as_a_browser_does():
    latin1 = '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">DX Boz\xf3th 42.0\xb0E \x96'.encode(
        "latin-1"
    )
    assert charset_of(latin1) == "iso-8859-1"
    # ISO-8859-1 is decoded as windows-1252 (the WHATWG rule): 0x96 is an en dash
    assert decode_html(latin1).endswith("DX Bozóth 42.0°E –")
    # the header's charset wins over the page's
    assert decode_html("é".encode(), "text/html; charset=utf-8") == "é"
    # no declaration: UTF-8 when it decodes, else windows-1252
    assert decode_html("Kraków".encode()) == "Kraków"
    assert decode_html("Krak\xf3w".encode("latin-1")) == "Kraków"
