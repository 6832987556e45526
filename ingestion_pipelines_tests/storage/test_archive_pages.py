"""Driver values into Arrow columns (`storage.archive_pages`): text cast exactly, never rounded;
booleans as MariaDB and SQLite hand them back (0/1); objects as PostgreSQL's driver gives them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from ingestion_pipelines.storage.archive import DECIMAL, TIMESTAMP
from ingestion_pipelines.storage.archive_pages import PageError, column_array, tuples_to_batch


def test_text_decimals_exact_and_refused_when_a_digit_would_be_lost():
    values = ["64123.123456789012345678", "0.000000000000000001", None]
    assert column_array(DECIMAL, values).to_pylist() == [
        Decimal("64123.123456789012345678"),
        Decimal("0.000000000000000001"),
        None,
    ]
    with pytest.raises(pa.ArrowInvalid):
        column_array(DECIMAL, ["1.0000000000000000001"])  # 19 decimals


def test_text_times_are_utc_instants_and_objects_pass_as_they_are():
    text = column_array(TIMESTAMP, ["2026-05-01 03:00:07.123456", "2026-05-01 03:00:07"])
    at = datetime(2026, 5, 1, 3, 0, 7, 123456, tzinfo=UTC)
    assert text.to_pylist() == [at, at.replace(microsecond=0)]
    assert column_array(TIMESTAMP, [at]).to_pylist() == [at]
    assert column_array(DECIMAL, [Decimal("1.5")]).to_pylist() == [Decimal("1.5")]


def test_booleans_from_integers():
    assert column_array(pa.bool_(), [1, 0, None]).to_pylist() == [True, False, None]


def test_a_value_that_does_not_fit_names_its_column():
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("price", DECIMAL)])
    assert tuples_to_batch(schema, []).num_rows == 0
    with pytest.raises(PageError, match="price"):
        tuples_to_batch(schema, [(1, "1e40")])
