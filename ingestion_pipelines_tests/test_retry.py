"""The one retry module: full jitter, Retry-After, transient statuses and errors."""

import random
from email.utils import formatdate

import pytest

from ingestion_pipelines.core.errors import IngestError, is_transient
from ingestion_pipelines.core.retry import (
    Backoff,
    full_jitter,
    is_retryable_status,
    parse_retry_after,
)


def test_full_jitter_spans_zero_to_the_exponential_ceiling():
    rng = random.Random(7)
    draws = [full_jitter(4, 0.5, 30, rng) for _ in range(2000)]
    assert min(draws) < 0.2 and 3.6 < max(draws) <= 4.0  # uniform in [0, 0.5 * 2^3]
    assert max(full_jitter(20, 0.5, 30, rng) for _ in range(500)) <= 30


def test_backoff_grows_resets_and_yields_to_retry_after():
    backoff = Backoff(1, 8, random.Random(1))
    ceilings = [1, 2, 4, 8, 8]
    for ceiling in ceilings:
        assert 0 <= backoff.next() <= ceiling
    assert backoff.next(retry_after_s=12.0) == 12.0
    backoff.reset()
    assert backoff.failures == 0 and backoff.next() <= 1


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(None, True), (500, True), (503, True), (429, True), (408, True), (404, False), (400, False)],
)
def test_which_statuses_are_retried(status, retryable):
    assert is_retryable_status(status) is retryable


def test_retry_after_in_seconds_or_as_a_date():
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(formatdate(1_000_030, usegmt=True), now=1_000_000) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(formatdate(999_000, usegmt=True), now=1_000_000) == 0.0  # past


def test_errors_say_whether_they_are_transient():
    assert is_transient(IngestError("db restarting", transient=True))
    assert not is_transient(IngestError("404"))
    assert is_transient(ConnectionRefusedError()) and not is_transient(ValueError())
