"""The unit converters a declared field may name (``unit: sjc_xml_price``): functions of
`vnmarket.units`, each turning the text or number a source sends into the stored value (VND,
UTC) or raising `UnitError` naming what it refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ingestion_pipelines.vnmarket import units

# unit name -> the converter (raw text or number -> the stored value; UnitError when unreadable)
UNITS: dict[str, Callable[[Any], Any]] = {
    "thousands_to_vnd": units.thousands_to_vnd,
    "sjc_xml_price": units.sjc_xml_price,
    "sjc_xml_updated": units.sjc_xml_updated,
    "sjc_json_value": units.sjc_json_value,
    "sjc_json_latest": units.sjc_json_latest,
    "bank_rate": units.bank_rate,
    "vcb_datetime": units.vcb_datetime,
    "pnj_price": units.pnj_price,
}
