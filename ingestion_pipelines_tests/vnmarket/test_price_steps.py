"""Price steps of HOSE, HNX and UPCoM, and the reconciliation that names every day two series
differ by more than one step."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from ingestion_pipelines.vnmarket.price_steps import PriceStepError, price_step, reconcile


@pytest.mark.parametrize(
    "price, step",
    [
        ("9990", "10"),
        ("9999.99", "10"),
        ("10000", "50"),
        ("49950", "50"),
        ("49999", "50"),
        ("50000", "100"),
        ("123400", "100"),
    ],
)
def test_hose_stock_bands(price, step):
    assert price_step(D(price), "HOSE") == D(step)
    assert price_step(D(price), "HSX", "fund") == D(step)


def test_fixed_steps_of_the_other_boards_and_instruments():
    assert price_step(D("5000"), "HNX") == D(100)
    assert price_step(D("150000"), "hnx") == D(100)
    assert price_step(D("7000"), "UPCoM") == D(100)
    assert price_step(D("25000"), "HOSE", "etf") == D(10)
    assert price_step(D("1200"), "HOSE", "covered_warrant") == D(10)
    assert price_step(D("18000"), "HNX", "etf") == D(1)


def test_unknown_board_instrument_or_price_is_an_error():
    with pytest.raises(PriceStepError, match="exchange"):
        price_step(D(1000), "NYSE")
    with pytest.raises(PriceStepError, match="covered_warrant"):
        price_step(D(1000), "HNX", "covered_warrant")
    with pytest.raises(PriceStepError):
        price_step(D(0), "HOSE")
    with pytest.raises(ValueError):
        price_step(D(1000), "HOSE", "bond")


def test_one_step_apart_agrees_more_is_named():
    d1, d2, d3 = date(2026, 9, 15), date(2026, 9, 16), date(2026, 9, 17)
    ours = {d1: D("66092"), d2: D("67092"), d3: D("67546")}
    theirs = {d1: D("66192"), d2: D("67192.01"), d3: D("67546")}
    result = reconcile("FPT", ours, theirs, "HOSE")
    assert result.compared == 3
    assert [d.day for d in result.differences] == [d2]  # d1 is exactly one step (100)
    diff = result.differences[0]
    assert diff.step == D(100) and diff.difference == D("-100.01")
    assert "FPT 2026-09-16" in diff.describe()
    assert not result.agrees
    assert result.metadata()["days_over_one_step"] == 1


def test_band_edge_uses_the_finer_step_of_the_lower_price():
    day = date(2026, 1, 5)
    # 49,990 vs 50,060: the lower price's step is 50, so a 70 VND gap is over one step
    result = reconcile("AAA", {day: D("49990")}, {day: D("50060")}, "HOSE")
    assert [d.step for d in result.differences] == [D(50)]


def test_days_one_side_lacks_are_reported_not_judged():
    a, b, c = date(2026, 1, 5), date(2026, 1, 6), date(2026, 1, 7)
    result = reconcile("AAA", {a: D(100), b: D(100)}, {b: D(100), c: D(100)}, "UPCOM")
    assert result.compared == 1 and result.agrees
    assert result.only_ours == [a] and result.only_theirs == [c]


def test_index_levels_are_compared_with_a_tolerance_instead_of_a_step():
    a, b = date(2025, 12, 3), date(2025, 12, 4)
    ours = {a: D("1971.99"), b: D("1979.53")}
    theirs = {a: D("1971.99"), b: D("1979.55")}
    assert reconcile("VN30", ours, theirs, "HOSE", tolerance=D("0.01")).differences[0].day == b
    assert reconcile("VN30", ours, theirs, "HOSE", tolerance=D("0.02")).agrees
