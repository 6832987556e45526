"""Unit normalisation of the Vietnamese sources, on values from captured payloads (staging
PROVENANCE.md names each capture)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ingestion_pipelines.vnmarket.units import (
    UnitError,
    bank_rate,
    check_sjc_json,
    pnj_price,
    provider_price_to_vnd,
    sjc_json_latest,
    sjc_json_text,
    sjc_json_value,
    sjc_xml_price,
    sjc_xml_updated,
    thousands_to_vnd,
    vcb_datetime,
)

# SJC tygiavang.xml of 22/05/2013 08:58:32, published verbatim in a PHP comment (defs/
# vn_gold_prices/data/PROVENANCE.md); trimmed to two cities.
SJC_XML_2013 = (
    "<root><title>Cong ty TNHH MTV Vang bac da quy Sai gon : Bang Ty gia vang SJC</title>"
    "<url>http://www.sjc.com.vn/</url>"
    '<ratelist updated="08:58:32 AM 22/05/2013" unit="ngàn đồng/lượng">'
    '<city name="Hồ Chí Minh"><item buy="40.720" sell="40.820" type="Vàng SJC 1L"/>'
    '<item buy="14.014" sell="16.214" type="Vàng nữ trang 10 K"/></city>'
    '<city name="Hà Nội"><item buy="40.720" sell="40.840" type="Vàng SJC"/></city>'
    "</ratelist></root>"
)
# Vietcombank Exrate XML of 9/2/2026, "trimmed from a real response" by its publisher.
VCB_XML_2026 = """<!--For reference only. Only one request every 5 minutes!-->
<ExrateList>
  <DateTime>9/2/2026 5:38:54 PM</DateTime>
  <Exrate CurrencyCode="JPY" CurrencyName="YEN                 " Buy="157.55" Transfer="159.14" Sell="168.55" />
  <Exrate CurrencyCode="KWD" CurrencyName="KUWAITI DINAR       " Buy="" Transfer="" Sell="88,000.00" />
  <Exrate CurrencyCode="USD" CurrencyName="US DOLLAR           " Buy="25,850.00" Transfer="25,880.00" Sell="26,260.00" />
  <Source>Joint Stock Commercial Bank for Foreign Trade of Vietnam - Vietcombank</Source>
</ExrateList>"""  # noqa: E501


def test_sjc_xml_thousands_per_tael_become_vnd_per_tael():
    root = ET.fromstring(SJC_XML_2013)
    assert root.find("ratelist").get("unit") == "ngàn đồng/lượng"
    item = root.find("ratelist/city/item")
    assert sjc_xml_price(item.get("buy")) == Decimal("40720000")
    assert sjc_xml_price(item.get("sell")) == Decimal("40820000")
    jewellery = root.findall("ratelist/city/item")[1]
    assert sjc_xml_price(jewellery.get("buy")) == Decimal("14014000")


@pytest.mark.parametrize(
    "text, vnd",
    [
        ("36.420", "36420000"),
        ("980", "980000"),
        ("1.234.567", "1234567000"),
        (" 34.680 ", "34680000"),
    ],
)
def test_sjc_xml_price_formats(text, vnd):
    assert sjc_xml_price(text) == Decimal(vnd)


@pytest.mark.parametrize("text", ["118,500", "36.42", "36.4200", "", "-", "abc", "3e5"])
def test_sjc_xml_refuses_what_is_not_its_format(text):
    with pytest.raises(UnitError):
        sjc_xml_price(text)


def test_sjc_json_value_is_vnd_and_text_is_checked_against_it():
    assert sjc_json_value("118500000.0000") == Decimal("118500000")
    assert sjc_json_value(Decimal("120500000.0")) == Decimal("120500000")
    assert sjc_json_text("118,500") == Decimal("118500")
    # "Buy": "118,500" with "BuyValue": 118500000.0 - the text in thousands
    assert check_sjc_json("118,500", Decimal("118500000.0")) == Decimal("118500000")
    # the same price written in full VND also agrees
    assert check_sjc_json("118,500,000", "118500000") == Decimal("118500000")


def test_sjc_json_disagreement_is_an_error_not_a_guess():
    with pytest.raises(UnitError, match="disagrees"):
        check_sjc_json("118,600", "118500000.0")
    with pytest.raises(UnitError):
        sjc_json_value("118500000.5")
    with pytest.raises(UnitError):
        sjc_json_value(1.185e8)  # a float is never read


def test_vietcombank_rates_with_grouping_and_unquoted_columns():
    rates = {
        e.get("CurrencyCode"): e
        for e in ET.fromstring(VCB_XML_2026.split("-->", 1)[1]).iter("Exrate")
    }
    usd = rates["USD"]
    assert bank_rate(usd.get("Buy")) == Decimal("25850.00")
    assert bank_rate(usd.get("Transfer")) == Decimal("25880.00")
    assert bank_rate(usd.get("Sell")) == Decimal("26260.00")
    assert bank_rate(rates["JPY"].get("Buy")) == Decimal("157.55")
    kwd = rates["KWD"]
    assert bank_rate(kwd.get("Buy")) is None and bank_rate(kwd.get("Transfer")) is None
    assert bank_rate(kwd.get("Sell")) == Decimal("88000.00")


def test_vietcombank_2017_plain_numbers_and_zero_as_not_quoted():
    # 4/11/2017 feed (ionic2-GoPREx mock, values verbatim): plain numbers, "0" where not quoted
    assert bank_rate("22625") == Decimal("22625")
    assert bank_rate("28007.5") == Decimal("28007.5")
    assert bank_rate("0") is None
    with pytest.raises(UnitError):
        bank_rate("25.850,00")


def test_vndirect_thousands_and_vietcap_vnd_meet_in_vnd():
    # VNDIRECT ABB 2021-12-03 close 21.4 (thousands) and a Vietcap close in full VND
    assert thousands_to_vnd(Decimal("21.4")) == Decimal("21400.0")
    assert thousands_to_vnd("21.847") == Decimal("21847.000")
    assert provider_price_to_vnd(Decimal("65.182"), "vndirect") == Decimal("65182.000")
    assert provider_price_to_vnd(73600, "vietcap") == Decimal("73600")
    assert provider_price_to_vnd(Decimal("65.182"), "vndirect") == provider_price_to_vnd(
        "65182", "vietcap"
    )


def test_unknown_provider_and_floats_are_refused():
    with pytest.raises(UnitError, match="provider"):
        provider_price_to_vnd("1", "tcbs")
    with pytest.raises(UnitError, match="float"):
        thousands_to_vnd(21.4)
    with pytest.raises(UnitError):
        thousands_to_vnd("21,4")


def test_pnj_thousands_per_chi_become_vnd_per_tael():
    # PNJ 17/06/2026 (published live excerpt): SJC bar giaban 15130, giamua 14880 - the same
    # SJC bar quoted 15,130,000 / 14,880,000 VND per chỉ by BTMC and webgia that day
    assert pnj_price(15130) == Decimal("151300000")
    assert pnj_price(Decimal(14880)) == Decimal("148800000")
    with pytest.raises(UnitError):
        pnj_price(True)


def test_feed_times_are_ict_and_vietcombank_writes_the_month_first():
    # The same app captured SJC at 08:53:59 and Vietcombank at 8:55:51 on the morning of
    # 11 April 2017: SJC writes "11/04/2017", Vietcombank "4/11/2017".
    sjc = sjc_xml_updated("08:53:59 AM 11/04/2017")
    vcb = vcb_datetime("4/11/2017 8:55:51 AM")
    assert sjc == datetime(2017, 4, 11, 1, 53, 59, tzinfo=UTC)
    assert vcb - sjc == timedelta(minutes=1, seconds=52)
    assert vcb_datetime("9/2/2026 5:38:54 PM") == datetime(2026, 9, 2, 10, 38, 54, tzinfo=UTC)
    assert sjc_json_latest("13:43 04/07/2026") == datetime(2026, 7, 4, 6, 43, tzinfo=UTC)
    with pytest.raises(UnitError):
        vcb_datetime("2026-09-02 17:38")
