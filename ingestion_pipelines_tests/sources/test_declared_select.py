"""`replay.select`: the records of one recording each request asks for (VNDIRECT's ``q`` clauses,
a plain parameter), and the total the answer says for them."""

from __future__ import annotations

import pytest

from ingestion_pipelines.sources.declared_select import (
    SelectError,
    clauses,
    request_params,
    selected,
    with_totals,
)

RECORDS = [
    {"code": "FPT", "date": "2024-03-01", "floor": "HOSE", "close": 99.5},
    {"code": "FPT", "date": "2024-03-04", "floor": "HOSE", "close": 101.2},
    {"code": "VNM", "date": "2024-03-04", "floor": "HOSE", "close": 68.7},
    {"code": "SHS", "date": "2024-03-05T00:00:00", "floor": "HNX", "close": 17},
    {"code": "ACV", "floor": "UPCOM", "close": 90},  # no date
]
Q = {"q": {"clauses": "~"}}


def codes(records):
    return [(r["code"], r.get("date")) for r in records]


def test_vndirect_clauses_select_one_stock_over_a_date_range():
    got = selected(RECORDS, Q, {"q": "code:FPT~date:gte:2024-03-02~date:lte:2024-03-04"})
    assert codes(got) == [("FPT", "2024-03-04")]


def test_several_values_times_compared_on_their_date_and_a_missing_field_never_matches():
    got = selected(RECORDS, Q, {"q": "code:VNM,SHS,ACV~date:gte:2024-03-04~date:lte:2024-03-05"})
    assert codes(got) == [("VNM", "2024-03-04"), ("SHS", "2024-03-05T00:00:00")]


def test_numbers_compare_as_numbers_not_text():
    assert [r["close"] for r in selected(RECORDS, Q, {"q": "close:gt:90"})] == [99.5, 101.2]
    assert [r["close"] for r in selected(RECORDS, Q, {"q": "close:lt:20"})] == [17]


def test_a_plain_parameter_selects_by_equality_and_an_absent_one_selects_everything():
    rules = {"symbol": "code", **Q}
    assert codes(selected(RECORDS, rules, {"symbol": "VNM"})) == [("VNM", "2024-03-04")]
    assert selected(RECORDS, rules, {"symbol": ""}) == RECORDS
    assert selected(RECORDS, rules, {}) == RECORDS


def test_a_post_body_list_is_one_of_its_values():
    params = request_params({"page": "1"}, {"codes": ["ACV", "SHS"], "page": 1})
    assert codes(selected(RECORDS, {"codes": "code"}, params)) == [
        ("SHS", "2024-03-05T00:00:00"),
        ("ACV", None),
    ]


def test_a_clause_without_a_field_is_refused():
    with pytest.raises(SelectError):
        clauses("FPT~date:gte:2024-01-01", "~")


def test_the_total_says_what_was_selected_where_the_body_has_one():
    body = {"data": [], "totalElements": 26, "meta": {"total": 26}}
    got = with_totals(body, ["meta.total", "totalElements", "absent"], 3)
    assert got == {"data": [], "totalElements": 3, "meta": {"total": 3}}
    assert body["meta"]["total"] == 26  # the recording is left as recorded
