"""What a declared field does besides reading a path (`value:`, `map:`, `unit:`, ``format:
yyyymmdd``), where a body's records are (nested lists, one object, named lists) and XML bodies
(decoded to the tree paths walk; DTDs and entities refused), on the recorded payloads where they
exist."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from ingestion_pipelines.sources.base import SourceError
from ingestion_pipelines.sources.declared import load_declared_sources
from ingestion_pipelines.sources.declared_body import (
    check_required,
    found_records,
    xml_bytes,
    xml_tree,
)
from ingestion_pipelines.sources.declared_models import record_model
from ingestion_pipelines.sources.declared_render import render
from ingestion_pipelines.sources.declared_spec import RecordsSpec, RestSourceSpec, RuleSpec
from ingestion_pipelines.sources.declared_values import classified, converted, json_safe, set_value

STARTED = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
SJC = (
    b'<root><title>SJC</title><ratelist updated="08:58:32 AM 22/05/2013" unit="x">'
    b'<city name="A"><item buy="40.720" sell="40.820" type="1L"/><item buy="1" sell="2" type="N"/>'
    b'</city><city name="B"><item buy="40.710" sell="40.840" type="1L"/></city></ratelist></root>'
)


# ---- XML -------------------------------------------------------------------------------------


def test_xml_decodes_to_the_tree_paths_walk_attributes_text_and_repeated_tags():
    tree = xml_tree(b"<L><D>4/11/2017 8:55 AM</D><E c='AUD' b=''/><E c='USD' b='1'>t</E></L>")
    assert tree == {
        "L": {
            "D": "4/11/2017 8:55 AM",
            "E": [{"@c": "AUD", "@b": ""}, {"@c": "USD", "@b": "1", "#text": "t"}],
        }
    }
    assert xml_tree(xml_bytes(tree)) == tree


@pytest.mark.parametrize(
    "hostile",
    [
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><r>&b;</r>',
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
        b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1/evil.dtd"><r/>',
    ],
)
def test_an_xml_body_with_a_dtd_or_entities_is_refused_not_expanded(hostile):
    with pytest.raises(SourceError, match="XML refused"):
        xml_tree(hostile)


def test_a_body_that_is_not_xml_fails_naming_what_it_got():
    with pytest.raises(SourceError, match="not an XML document"):
        xml_tree(b'{"data": []}')


# ---- records ---------------------------------------------------------------------------------


def test_nested_lists_are_walked_with_star_and_each_record_knows_its_parent():
    found = found_records(xml_tree(SJC), RecordsSpec(path="root.ratelist.city.*.item"), "xml")
    assert [(f.parent["@name"], f.item["@type"]) for f in found] == [
        ("A", "1L"),
        ("A", "N"),
        ("B", "1L"),  # a city with one item: a list of one
    ]


def test_one_object_and_named_lists_are_explicit():
    body = {"data": {"code": "FPT"}, "a": [{"x": 1}], "b": [{"x": 2}, {"x": 3}]}
    (one,) = found_records(body, RecordsSpec(path="data", one=True))
    assert one.item == {"code": "FPT"} and one.parent is body
    named = found_records(body, RecordsSpec(lists={"stock": "a", "asset": "b"}))
    assert [(f.list_name, f.item["x"]) for f in named] == [("stock", 1), ("asset", 2), ("asset", 3)]
    with pytest.raises(SourceError, match="expected a list of records at data"):
        found_records(body, RecordsSpec(path="data"))  # JSON: an object is no list
    with pytest.raises(SourceError, match="expected one record"):
        found_records(body, RecordsSpec(path="a", one=True))
    with pytest.raises(ValidationError):
        RecordsSpec(path="a", lists={"x": "b"})


def test_a_required_value_the_feed_no_longer_states_fails_the_run():
    tree = xml_tree(SJC)
    check_required(tree, {"root.ratelist.@unit": "x"})
    with pytest.raises(SourceError, match="root.ratelist.@unit is 'x', expected 'ngàn"):
        check_required(tree, {"root.ratelist.@unit": "ngàn đồng/lượng"})


# ---- value:, map:, unit:, format -------------------------------------------------------------


def test_value_sets_a_constant_the_run_time_or_a_template_of_the_run_or_the_record():
    window = {"start": date(2026, 3, 2), "last_day": date(2026, 3, 6)}
    context = {
        "settings": SimpleNamespace(provider="vci"),
        "window": window,
        "row": {"symbol": "FPT"},
        "started_at": STARTED,
        "list": "stock",
        "parent": {"@name": "Hà Nội", "n": 3},
        "body": {"root": {"@updated": "08:58:32 AM 22/05/2013"}},
    }
    assert set_value("SJC", context) == "SJC"
    assert set_value("run_started_at", context) == STARTED
    assert set_value("{settings.provider}", context) == "vci"
    assert set_value("{row.symbol}", context) == "FPT"
    assert set_value("{window.start}", context) == "2026-03-02"
    assert set_value("{window.start:%Y%m%d}", context) == "20260302"
    assert set_value("{list.name}", context) == "stock"
    assert set_value("{parent.@name}", context) == "Hà Nội"
    assert set_value("{parent.n}", context) == 3  # a whole placeholder keeps its type
    assert set_value("{body.root.@updated}", context) == "08:58:32 AM 22/05/2013"
    assert set_value("{row.symbol}-{list.name}", context) == "FPT-stock"
    assert set_value("{run.started_at}", context) == STARTED
    late = {**context, "started_at": datetime(2026, 12, 6, 18, 0, tzinfo=UTC)}
    assert set_value("{run.day}", late) == date(2026, 12, 7)  # 01:00 ICT the next day
    assert set_value("{run.day:%Y%m%d}", late) == "20261207"
    with pytest.raises(SourceError, match="list.name"):
        set_value("{list.name}", {**context, "list": None})


def test_request_templates_render_a_window_day_in_a_named_format():
    context = {"window": {"start": date(2026, 3, 2), "last_day": date(2026, 3, 6)}}
    assert render("{window.start:%Y%m%d}-{window.last_day:%Y%m%d}", context) == "20260302-20260306"
    assert render("{window.start}", context) == "2026-03-02"
    with pytest.raises(SourceError, match="dates only"):
        render("{settings.x:%Y}", {"settings": {"x": "a"}})


def _spec(**fields) -> RestSourceSpec:
    return RestSourceSpec.model_validate(
        {
            "worker_id": "test_values",
            "request": {"path": "/x"},
            "table": {
                "name": "t",
                "columns": {
                    "code": "string(16) key",
                    "day": "date",
                    "price": "decimal",
                    "rate": "decimal",
                    "provider": "string(16)",
                },
            },
            "fields": fields,
        }
    )


def test_map_unit_and_yyyymmdd_convert_before_the_column_checks():
    spec = _spec(
        code={"path": "floor", "map": {"HNX": "HNXINDEX"}},
        day={"path": "d", "format": "yyyymmdd"},
        price={"path": "p", "unit": "sjc_xml_price", "gt": 0},
        rate={"path": "r", "unit": "bank_rate"},
        provider={"value": "SJC"},
    )
    model = record_model(spec, "ValuesRecord")
    row = model.model_validate(
        {"floor": "HNX", "d": "20240315", "p": "40.720", "r": "", "provider": "SJC"}
    )
    assert (row.code, row.day, row.price, row.rate) == (
        "HNXINDEX",
        date(2024, 3, 15),
        Decimal("40720000"),
        None,  # "" = not quoted: NULL, never 0
    )
    assert model.model_validate({"floor": "HOSE", "d": 20240315, "p": "1"}).code == "HOSE"
    for bad in ({"p": "40,720"}, {"d": "20241315"}, {"p": "0"}):
        with pytest.raises(ValidationError):
            model.model_validate({"floor": "HNX", "d": "20240315", "p": "40.720", **bad})
    assert converted(spec.field("day"), None) is None


# ---- the recorded captures through the declared sources --------------------------------------


def _parsed(worker_id: str, file: str, row: dict | None = None) -> list:
    """The rows of the recorded `file`; `row`: the one `for_each` row asked (no table read)."""
    source = load_declared_sources()[worker_id]
    crawl = source(source.Settings())
    if row is not None:
        crawl.rows_for_each = lambda: [row]
    (request,) = crawl.build_requests()
    response = SimpleNamespace(content=(source.folder / "data" / file).read_bytes())
    crawl.started_at = STARTED
    items = [item for item in crawl.parse(response, request) if isinstance(item, dict)]
    return [source.record.model_validate(item).row() for item in items]  # the next page left out


def test_the_2017_sjc_board_lands_in_vnd_per_tael_per_branch_at_its_ict_time():
    rows = _parsed("vn_gold_prices", "sjc_tygiavang_2017-04-11.xml")
    assert len(rows) == 19 and {r["provider"] for r in rows} == {"SJC"}
    first, last = rows[0], rows[-1]
    assert (first["branch"], first["product"], first["buy"], first["sell"]) == (
        "Hồ Chí Minh",
        "Vàng SJC 1L - 10L",
        Decimal("36420000"),
        Decimal("36620000"),
    )
    assert (last["branch"], last["buy"], last["sell"]) == (
        "Long Xuyên",
        Decimal("36420000"),
        Decimal("36620000"),
    )
    assert {r["at"] for r in rows} == {datetime(2017, 4, 11, 1, 53, 59, tzinfo=UTC)}


def test_the_2017_vietcombank_board_keeps_unquoted_cash_rates_null():
    rows = {r["currency"]: r for r in _parsed("vn_fx_rates", "vcb_exrate_2017-04-11.xml")}
    assert len(rows) == 19
    usd, dkk = rows["USD"], rows["DKK"]
    assert (usd["cash_buy"], usd["transfer_buy"], usd["sell"]) == (
        Decimal("22625"),
        Decimal("22625"),
        Decimal("22695"),
    )
    assert (dkk["cash_buy"], dkk["transfer_buy"]) == (None, Decimal("3179.04"))  # "0": not quoted
    assert usd["at"] == datetime(2017, 4, 11, 1, 55, 51, tzinfo=UTC)  # month first, ICT
    assert usd["extra"] == {"@CurrencyName": "US DOLLAR"}


def test_rules_classify_a_column_from_the_record_first_rule_met_wins():
    rules = [
        RuleSpec(when={"code": "^ISS$", "title": "CBCNV|ESOP"}, then="other"),
        RuleSpec(when={"code": "^ISS$", "title": "(?i)cổ phiếu thưởng"}, then="bonus_shares"),
        RuleSpec(when={"code": "^DIV$", "value": "."}, then="cash_dividend"),
        RuleSpec(then="other"),
    ]
    assert classified(rules, {"code": "ISS", "title": "Cổ phiếu thưởng 20%"}) == "bonus_shares"
    assert classified(rules, {"code": "ISS", "title": "Cổ phiếu thưởng CBCNV"}) == "other"
    assert classified(rules, {"code": "DIV", "value": 1500}) == "cash_dividend"
    assert classified(rules, {"code": "DIV", "value": None}) == "other"  # absent: no match
    assert classified(rules[:2], {"code": "AGME"}) is None


def test_the_vietcap_events_are_typed_by_their_rules_and_asked_up_to_the_run_day():
    source = load_declared_sources()["vn_corporate_events"]
    crawl = source(source.Settings())
    crawl.rows_for_each = lambda: [{"symbol": "SSI"}]
    crawl.started_at = datetime(2026, 12, 6, 18, 30, tzinfo=UTC)  # 01:30 ICT on the 7th
    (request,) = crawl.build_requests()
    assert request.params["toDate"] == "20261207" and request.params["fromDate"] == "20100101"
    assert request.params["ticker"] == "SSI"
    rows = _parsed("vn_corporate_events", "vietcap_events_SSI_2026.json", {"symbol": "SSI"})
    assert [(r["type"], r["ratio"], r["ex_date"]) for r in rows] == [
        ("other", Decimal("0.0033"), None),  # ESOP: no price adjustment
        ("bonus_shares", Decimal("0.2"), None),  # announced, ex-date not known yet
        ("other", None, date(2026, 3, 16)),  # the AGM
    ]
    assert rows[1]["extra"]["eventCode"] == "ISS" and rows[1]["type_classified"] is True


def test_three_lists_of_one_body_each_with_its_own_field_names_and_its_kind():
    rows = _parsed(
        "fmarket_fund_holdings", "fmarket_product_detail_VEOF_shape.json", {"fund_id": 20}
    )
    assert [(r["kind"], r["name"], r["weight_pct"]) for r in rows] == [
        ("stock", "MBB", Decimal("7.99")),
        ("industry", "Ngân hàng", Decimal("33.36")),  # its key is assetPercent
        ("asset_class", "STOCK", Decimal("97.44")),  # no bond list published: none written
    ]
    assert {(r["fund_id"], r["fund_code"], r["as_of"]) for r in rows} == {
        (20, "VEOF", date(2026, 12, 6))  # the ICT day of STARTED
    }
    assert rows[0]["extra"] == {
        "industry": "Ngân hàng",
        "price": "25.2",
        "type": "STOCK",
    }  # exact text
    assert rows[2]["extra"] == {"assetType": {"code": "STOCK"}}


def test_the_two_gold_houses_declare_the_one_gold_price_table_identically():
    sources = load_declared_sources()
    sjc, pnj = (sources[w].spec.table for w in ("vn_gold_prices", "vn_gold_prices_pnj"))
    assert sjc == pnj


def test_a_for_each_row_is_kept_in_a_request_as_json_values():
    row = {"symbol": "FPT", "listed_on": date(2006, 12, 13), "id": 7, "cap": Decimal("1.50")}
    assert json_safe(row) == {"symbol": "FPT", "listed_on": "2006-12-13", "id": 7, "cap": "1.50"}
    assert json_safe(None) is None
