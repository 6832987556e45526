"""`json_text` writes the same canonical text whichever encoder it picks (orjson for plain
values, the standard library's for the rest), so stored `extra` documents never change bytes."""

import json
from decimal import Decimal

import pytest

from ingestion_pipelines.storage.types import json_text


def standard(value):
    return json.dumps(value, default=str, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize(
    "value",
    [
        {"id": 1, "createdAt": 1_700_000_000_000, "updatedAt": None, "active": True},
        {
            "text": 'Quỹ "đầu tư"\n\t\\ \x00\x1f\x7f \u2028 😀',
            "nav": Decimal("0.1000000000000000001"),
        },
        {"b": {"z": 1, "a": [None, False, Decimal("1E+3")]}, "a": [2**63 - 1, -(2**63), 2**64 - 1]},
        {"é": 1, "e": 2, "Z": 3, "\uffff": 4, "😀": 5},
        {"float": 1e16, "small": 1e-7},  # the standard encoder's float text: 1e+16, 1e-07
        {"huge": 2**64, "nan": float("nan"), "decimal_nan": Decimal("NaN")},
        {1: "int key"},
        "\ud800 lone surrogate",
        [],
    ],
)
def test_json_text_is_the_standard_canonical_text(value):
    assert json_text(value) == standard(value)


def test_json_text_keeps_decimals_exact():
    assert json_text({"nav": Decimal("12345.678900000000000001")}) == (
        '{"nav":"12345.678900000000000001"}'
    )
