"""The staged payloads (`staging/<worker_id>/data`, see each PROVENANCE.md) read as their
FIELDS.md says: units land in VND exactly, and the two providers' files agree where they should.
The payloads of the datasets already declared in YAML are read from their folder
(`ingestion_pipelines/defs/<worker_id>/data`, where the standard tests serve them too)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ingestion_pipelines.storage.declared import DEFS_ROOT
from ingestion_pipelines.vnmarket.price_steps import reconcile
from ingestion_pipelines.vnmarket.units import (
    bank_rate,
    check_sjc_json,
    pnj_price,
    provider_price_to_vnd,
    sjc_json_latest,
    sjc_xml_price,
    sjc_xml_updated,
    thousands_to_vnd,
    vcb_datetime,
)

STAGING = Path(__file__).resolve().parents[2] / "staging"
DECLARED = (  # moved to defs/<worker_id>/
    "vn_indices",
    "vn_foreign_flows",
    "vn_financial_ratios",
    "vn_gold_prices",
    "vn_gold_prices_pnj",
    "vn_fx_rates",
)
# moved next to the tests of the derived worker that uses them
TEST_DATA = {"vn_stock_eod_adjusted": Path(__file__).resolve().parents[1] / "derived" / "data"}


def _root(path: str) -> Path:
    top = path.split("/", 1)[0]
    if top in TEST_DATA:
        return TEST_DATA[top]
    return DEFS_ROOT if top in DECLARED and (DEFS_ROOT / path).exists() else STAGING


def _json(path: str):
    return json.loads((_root(path) / path).read_text(encoding="utf-8"), parse_float=Decimal)


def _xml(path: str) -> ET.Element:
    text = (_root(path) / path).read_text(encoding="utf-8")
    return ET.fromstring(text.split("-->", 1)[1] if text.startswith("<!--") else text)


def _epoch_day(text: str) -> date:
    return datetime.fromtimestamp(int(text), UTC).date()


@pytest.mark.parametrize(
    "path",
    sorted(p.relative_to(STAGING) for p in STAGING.rglob("data/*") if p.name != "PROVENANCE.md"),
)
def test_every_staged_payload_parses_and_has_its_provenance(path):
    worker = path.parts[0]
    if (STAGING / worker / "defs.yaml").exists():  # a staged declaration: the defs/ layout
        assert (STAGING / worker / "data" / "PROVENANCE.md").read_text().count(path.name) >= 1
    else:
        assert (STAGING / worker / "PROVENANCE.md").read_text().count(path.name) >= 1
        assert (STAGING / worker / "FIELDS.md").exists()
    if path.suffix == ".json":
        _json(str(path))
    elif path.suffix in (".jsonl", ".io"):  # one JSON value a line (`.io`: ">> " / "<< " first)
        for line in (STAGING / path).read_text(encoding="utf-8").splitlines():
            json.loads(line[3:] if path.suffix == ".io" else line, parse_float=Decimal)
    elif path.suffix == ".txt":  # a text/plain body (e.g. a bare block height)
        assert (STAGING / path).read_text(encoding="utf-8").strip()
    else:
        _xml(str(path))


@pytest.mark.parametrize(
    "path, first_buy, updated",
    [
        ("vn_gold_prices/data/sjc_tygiavang_2013-05-22.xml", "40720000", "2013-05-22T01:58:32"),
        ("vn_gold_prices/data/sjc_tygiavang_2017-04-11.xml", "36420000", "2017-04-11T01:53:59"),
    ],
)
def test_sjc_xml_lands_in_vnd_per_tael(path, first_buy, updated):
    ratelist = _xml(path).find("ratelist")
    assert ratelist.get("unit") == "ngàn đồng/lượng"
    assert sjc_xml_updated(ratelist.get("updated")) == datetime.fromisoformat(updated + "+00:00")
    items = ratelist.findall("city/item")
    prices = [(sjc_xml_price(i.get("buy")), sjc_xml_price(i.get("sell"))) for i in items]
    assert prices[0][0] == Decimal(first_buy)
    assert all(buy <= sell for buy, sell in prices)


def test_sjc_json_text_agrees_with_its_values():
    payload = _json("vn_gold_prices/data/sjc_priceservice_2026-07-04.json")
    assert payload["success"] is True
    assert sjc_json_latest(payload["latestDate"]) == datetime(2026, 7, 4, 6, 43, tzinfo=UTC)
    rows = payload["data"]
    sells = [check_sjc_json(r["Sell"], r["SellValue"]) for r in rows]
    buys = [check_sjc_json(r["Buy"], r["BuyValue"]) for r in rows]
    assert (buys[0], sells[0]) == (Decimal(148400000), Decimal(151400000))
    assert sells[-1] == Decimal(112511000)


def test_pnj_and_the_sjc_bar_price_of_the_same_day():
    rows = {
        r["masp"]: r
        for r in _json("vn_gold_prices_pnj/data/pnj_get_gold_price_2026-06-17.json")["data"]
    }
    bar = rows["SJC"]
    # 17/06/2026: BTMC and webgia quoted the SJC bar 14,880,000 / 15,130,000 VND per chỉ
    assert pnj_price(bar["giamua"]) == Decimal(14880000) * 10
    assert pnj_price(bar["giaban"]) == Decimal(15130000) * 10


def test_doji_rows_need_their_own_unit_table():
    rows = {
        r.get("Name"): r
        for r in _xml("vn_gold_prices/data/doji_giavang_2026-07-05.xml").iter("Row")
    }
    hn, hcm = rows["DOJI HN lẻ"], rows["DOJI HCM lẻ"]
    # the same price, written per tael in thousands (HN) and per chỉ in thousands (HCM)
    assert (
        Decimal(hn.get("Sell").replace(",", "")) == Decimal(hcm.get("Sell").replace(",", "")) * 10
    )
    assert rows["Giá Nguyên Liệu 18K"].get("Sell") == "-"


def test_vietcombank_feeds():
    old = {
        e.get("CurrencyCode"): e
        for e in _xml("vn_fx_rates/data/vcb_exrate_2017-04-11.xml").iter("Exrate")
    }
    assert len(old) == 19
    assert bank_rate(old["USD"].get("Transfer")) == Decimal(22625)
    assert bank_rate(old["DKK"].get("Buy")) is None
    new = _xml("vn_fx_rates/data/vcb_exrate_2026-09-02.xml")
    assert vcb_datetime(new.findtext("DateTime")) == datetime(2026, 9, 2, 10, 38, 54, tzinfo=UTC)
    usd = next(e for e in new.iter("Exrate") if e.get("CurrencyCode") == "USD")
    assert [bank_rate(usd.get(k)) for k in ("Buy", "Transfer", "Sell")] == [
        Decimal("25850.00"), Decimal("25880.00"), Decimal("26260.00")
    ]  # fmt: skip


def test_the_two_providers_adjusted_fpt_prices_reconcile():
    vnd = _json("vn_stock_eod_adjusted/data/vndirect_stock_prices_FPT_2026-09-15_23.json")["data"]
    vci = _json("vn_stock_eod_adjusted/data/vietcap_gap_chart_FPT_2026-09-15_23.json")[0]
    ours = {date.fromisoformat(r["date"]): thousands_to_vnd(r["adClose"]) for r in vnd}
    theirs = {
        _epoch_day(t): provider_price_to_vnd(c, "vietcap")
        for t, c in zip(vci["t"], vci["c"], strict=True)
    }
    result = reconcile("FPT", ours, theirs, "HOSE")
    assert result.compared == 7 and result.agrees


def test_the_two_providers_vn30_closes_land_exactly():
    vnd = _json("vn_indices/data/vndirect_vnmarket_prices_VN30_2025-12-03_05.json")["data"]
    vci = _json("vn_indices/data/vietcap_gap_chart_VN30_2025-12-03_05.json")[0]
    ours = {date.fromisoformat(r["date"]): r["close"] for r in vnd}
    theirs = {_epoch_day(t): c for t, c in zip(vci["t"], vci["c"], strict=True)}
    assert ours[date(2025, 12, 3)] == Decimal("1971.99")  # points, never scaled
    assert reconcile("VN30", ours, theirs, "HOSE", tolerance=Decimal(0)).agrees


def test_the_captured_vnindex_row():
    row = _json("vn_indices/data/vndirect_vnmarket_prices_VNINDEX_2026-06-16.json")["data"][0]
    assert (row["code"], row["date"], row["close"]) == ("VNINDEX", "2026-06-16", Decimal("1807.94"))
    assert (
        row["high"]
        >= max(row["open"], row["close"])
        >= min(row["open"], row["close"])
        >= row["low"]
    )
    assert all(row[k] == row[k].to_integral_value() for k in ("advances", "declines", "noChange"))
    assert row["accumulatedVal"] == Decimal("16650836352800.0")  # whole VND, never scaled


def test_foreign_flow_and_statement_values_are_whole_vnd():
    flow = _json("vn_foreign_flows/data/vndirect_foreigns_HPG_2018-08-30.json")["data"][0]
    assert flow["netVal"] == flow["buyVal"] - flow["sellVal"]
    assert flow["netVol"] == flow["buyVol"] - flow["sellVol"]
    from ingestion_pipelines.replay.routes import read_data  # moved to sources/vndirect/data/

    name = "vndirect_financial_statements_FPT_QUARTER_model1_excerpt.json"
    row = json.loads(read_data(name), parse_float=Decimal)["data"][0]
    assert row["numericValue"] == Decimal(1576181989047)  # "1.576181989047E12", read exactly
