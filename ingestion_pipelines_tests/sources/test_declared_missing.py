"""`records.missing: dead_letter` (sources/declared_missing.py): which answers of one `for_each`
item are that item's dead letter and which still fail the run, on vn_company_profiles' declaration
(the crawls through the replay are in test_vn_company_profiles.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ingestion_pipelines.sources.base import Rejected, Request
from ingestion_pipelines.sources.declared import declared_sources
from ingestion_pipelines.sources.declared_missing import flattened, missing_record
from ingestion_pipelines.sources.declared_spec import RecordsSpec

ROW = {"symbol": "XYZ"}


def _spec():
    return declared_sources()["vn_company_profiles"].spec


def _missing(body, row=ROW):
    request = Request("/data-mt/graphql", method="POST", meta={"row": row})
    return missing_record(_spec(), body, request, b"raw")


def test_a_null_record_of_an_item_is_rejected_naming_it():
    rejected = _missing({"data": {"CompanyListingInfo": None, "TickerPriceInfo": None}})
    assert rejected == Rejected(
        "symbol=XYZ: no record at data.CompanyListingInfo (null)", b"raw", ROW
    )
    assert _missing({"data": {}}).reason.endswith("(null)")  # absent: the same


def test_field_errors_only_are_the_items_a_login_or_a_request_error_is_not():
    field = {"message": "boom", "path": ["CompanyListingInfo"]}
    assert _missing({"errors": [field], "data": {"CompanyListingInfo": None}}).reason == (
        "symbol=XYZ: the source answered errors for it: boom (at CompanyListingInfo)"
    )
    login = {**field, "extensions": {"code": "UNAUTHENTICATED"}}
    request_error = {"message": "Cannot query field"}
    for errors in ([login], [field, request_error]):
        assert _missing({"errors": errors, "data": {"CompanyListingInfo": None}}) is None


def test_a_body_without_the_holding_object_or_with_a_record_is_read_as_usual():
    assert _missing({}) is None  # the endpoint switched off: the run fails reading it
    assert _missing({"errors": [{"message": "x", "path": ["a"]}], "data": None}) is None
    assert _missing({"data": {"CompanyListingInfo": {"id": "1"}}}) is None
    assert _missing({"data": {"CompanyListingInfo": None}}, row=None) is None  # no for_each


def test_missing_needs_one_record_a_body():
    with pytest.raises(ValidationError, match="needs `one: true`"):
        RecordsSpec(path="data", missing="dead_letter")


def test_a_json_body_is_named_by_dotted_paths():
    body = {"query": "q", "variables": {"ticker": "VCB"}}
    assert flattened(body) == {**body, "variables.ticker": "VCB"}
