"""Backward adjustment factors, checked by hand and against VNDIRECT's own adjusted prices."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from ingestion_pipelines.vnmarket.adjustment import (
    AdjustmentError,
    Bar,
    CorporateEvent,
    EventKind,
    adjust,
    cash_per_share,
    combined_factor,
    factors_by_ex_date,
    ratio_from_text,
)
from ingestion_pipelines.vnmarket.price_steps import reconcile
from ingestion_pipelines.vnmarket.units import thousands_to_vnd

# VNDIRECT GET /v4/stock_prices for FPT, "real VNDIRECT response recorded 2026-09-23, trimmed to
# the fields read" by its publisher (ingestion_pipelines_tests/derived/data/vn_stock_eod_adjusted/
# PROVENANCE.md). Thousands of VND.
FPT_CAPTURE = [
    {"code": "FPT", "date": "2026-09-23", "open": "66.6", "close": "66.2", "adOpen": "66.6", "adClose": "66.2"},
    {"code": "FPT", "date": "2026-09-22", "open": "66.6", "close": "66.6", "adOpen": "66.6", "adClose": "66.6"},
    {"code": "FPT", "date": "2026-09-21", "open": "66.5", "close": "66.4", "adOpen": "66.5", "adClose": "66.4"},
    {"code": "FPT", "date": "2026-09-18", "open": "74.5", "close": "71.7", "adOpen": "67.728", "adClose": "65.182"},
    {"code": "FPT", "date": "2026-09-17", "open": "73.3", "close": "74.3", "adOpen": "66.637", "adClose": "67.546"},
    {"code": "FPT", "date": "2026-09-16", "open": "72.8", "close": "73.8", "adOpen": "66.182", "adClose": "67.092"},
    {"code": "FPT", "date": "2026-09-15", "open": "72.7", "close": "72.7", "adOpen": "66.092", "adClose": "66.092"},
]  # fmt: skip
EX_DATE = date(2026, 9, 21)


def _bar(day: str, close: str, *, open_: str | None = None, volume: str = "1000") -> Bar:
    o = D(open_ or close)
    c = D(close)
    return Bar(date.fromisoformat(day), o, max(o, c), min(o, c), c, D(volume))


def _fpt_bars() -> list[Bar]:
    return [
        _bar(r["date"], str(thousands_to_vnd(r["close"])), open_=str(thousands_to_vnd(r["open"])))
        for r in FPT_CAPTURE
    ]


def test_cash_dividend_factor():
    event = CorporateEvent("AAA", EventKind.CASH_DIVIDEND, date(2026, 6, 2), amount=D(2000))
    bars = [_bar("2026-06-01", "50000"), _bar("2026-06-02", "48500")]
    before, after = adjust(bars, [event])
    assert before.factor == D("0.96") and before.close == D("48000.000000")
    assert after.factor == 1 and after.close == D("48500.000000")
    assert before.volume == D("1000.000000")  # cash changes no share count


def test_stock_dividend_and_bonus_shares_factor_and_volume():
    stock = CorporateEvent(
        "AAA", EventKind.STOCK_DIVIDEND, date(2026, 6, 2), ratio=ratio_from_text("100:20")
    )
    (before, _) = adjust([_bar("2026-06-01", "36000"), _bar("2026-06-02", "30000")], [stock])
    assert before.close == D("30000.000000")
    assert before.volume == D("1200.000000")
    bonus = CorporateEvent("AAA", EventKind.BONUS_SHARES, date(2026, 6, 2), ratio=D("0.5"))
    assert (D(30000) * combined_factor([bonus], D(30000))).quantize(D("1e-20")) == D(20000)


def test_rights_issue_factor_is_terp_over_cum_price():
    rights = CorporateEvent(
        "AAA",
        EventKind.RIGHTS_ISSUE,
        date(2026, 6, 2),
        ratio=ratio_from_text("10:3"),
        price=D(10000),
    )
    factor = combined_factor([rights], D(25000))
    # TERP = (25000 + 0.3 * 10000) / 1.3 = 21538.4615...
    assert (D(25000) * factor).quantize(D("0.0001")) == D("21538.4615")


def test_split_halves_prices_and_doubles_volume():
    split = CorporateEvent("AAA", EventKind.SPLIT, date(2026, 6, 2), ratio=D(2))
    before, after = adjust([_bar("2026-06-01", "80000"), _bar("2026-06-02", "40500")], [split])
    assert before.close == D("40000.000000") and before.volume == D("2000.000000")
    assert after.close == D("40500.000000")


def test_events_on_one_ex_date_combine_in_the_exchange_formula():
    day = date(2026, 6, 2)
    cash = CorporateEvent("AAA", EventKind.CASH_DIVIDEND, day, amount=cash_per_share(D(10)))
    stock = CorporateEvent("AAA", EventKind.STOCK_DIVIDEND, day, ratio=D("0.1"))
    # (33000 - 1000) / 1.1 = 29090.90...; factor = that / 33000
    factor = combined_factor([cash, stock], D(33000))
    assert (D(33000) * factor).quantize(D("0.01")) == D("29090.91")


def test_factors_compound_backward_across_ex_dates():
    e1 = CorporateEvent("AAA", EventKind.CASH_DIVIDEND, date(2026, 6, 2), amount=D(1000))
    e2 = CorporateEvent("AAA", EventKind.SPLIT, date(2026, 6, 4), ratio=D(2))
    bars = [_bar("2026-06-01", "20000"), _bar("2026-06-02", "19000"), _bar("2026-06-03", "19000"),
            _bar("2026-06-04", "9600")]  # fmt: skip
    out = adjust(bars, [e2, e1])
    assert [b.factor for b in out] == [D("0.95") * D("0.5"), D("0.5"), D("0.5"), D(1)]
    assert out[0].close == D("9500.000000")


def test_an_event_before_the_first_bar_adjusts_nothing():
    early = CorporateEvent("AAA", EventKind.CASH_DIVIDEND, date(2026, 1, 5), amount=D(500))
    assert factors_by_ex_date([early], {date(2026, 1, 5): D(10000)}) == {}


@pytest.mark.parametrize(
    "events, match",
    [
        ([CorporateEvent("AAA", EventKind.CASH_DIVIDEND, date(2026, 6, 2))], "amount"),
        ([CorporateEvent("AAA", EventKind.CASH_DIVIDEND, date(2026, 6, 2), amount=D(60000))], "no price"),
        ([CorporateEvent("AAA", EventKind.RIGHTS_ISSUE, date(2026, 6, 2), ratio=D("0.2"))], "subscription"),
        ([CorporateEvent("AAA", EventKind.SPLIT, date(2026, 6, 2), ratio=D(2)),
          CorporateEvent("AAA", EventKind.CASH_DIVIDEND, date(2026, 6, 2), amount=D(1))], "split"),
    ],
)  # fmt: skip
def test_events_that_cannot_be_applied_are_errors(events, match):
    with pytest.raises(AdjustmentError, match=match):
        adjust([_bar("2026-06-01", "50000"), _bar("2026-06-02", "50000")], events)


def test_ratio_text():
    assert ratio_from_text("100:15") == D("0.15")
    with pytest.raises(AdjustmentError):
        ratio_from_text("15%")


def test_ours_reconcile_with_vndirect_adjusted_prices_within_a_step():
    """The capture's adjusted prices fall by 1/1.1 before 2026-09-21: a 10:1 stock dividend (an
    event inferred from the capture for this test, not a published announcement)."""
    event = CorporateEvent("FPT", EventKind.STOCK_DIVIDEND, EX_DATE, ratio=ratio_from_text("10:1"))
    ours = {b.day: b.close for b in adjust(_fpt_bars(), [event])}
    theirs = {date.fromisoformat(r["date"]): thousands_to_vnd(r["adClose"]) for r in FPT_CAPTURE}
    result = reconcile("FPT", ours, theirs, "HOSE")
    assert result.compared == 7 and result.agrees
    # VNDIRECT rounds its factor to 4 places (0.9091) and its prices to 1 VND; ours is exact
    for row in FPT_CAPTURE[3:]:
        assert (D(row["close"]) * D("0.9091")).quantize(D("0.001")) == D(row["adClose"])


def test_a_wrong_event_is_named_on_every_day_before_the_ex_date():
    wrong = CorporateEvent("FPT", EventKind.STOCK_DIVIDEND, EX_DATE, ratio=D("0.2"))
    ours = {b.day: b.close for b in adjust(_fpt_bars(), [wrong])}
    theirs = {date.fromisoformat(r["date"]): thousands_to_vnd(r["adClose"]) for r in FPT_CAPTURE}
    result = reconcile("FPT", ours, theirs, "HOSE")
    assert sorted(d.day for d in result.differences) == [
        date(2026, 9, 15), date(2026, 9, 16), date(2026, 9, 17), date(2026, 9, 18)
    ]  # fmt: skip
    assert all(d.steps < -1 for d in result.differences)


def test_an_event_after_the_last_bar_has_not_happened_yet():
    future = CorporateEvent("AAA", EventKind.CASH_DIVIDEND, date(2026, 6, 10), amount=D(1000))
    bars = [_bar("2026-06-01", "20000"), _bar("2026-06-02", "20100")]
    assert [b.factor for b in adjust(bars, [future])] == [D(1), D(1)]
    # seen from after its ex-date (a run whose data stops earlier), it applies: (P - D) / P
    # with P = 20100, the last close before the ex-date
    seen = adjust(bars, [future], as_of=date(2026, 6, 10))
    assert [(D(20100) * b.factor).quantize(D("1e-20")) for b in seen] == [D(19100)] * 2
    assert adjust([], [future]) == []
