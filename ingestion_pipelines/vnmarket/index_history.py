"""The first day of each Vietnamese index's daily history, as its exchange published it (the
sources beside each date): what a backfill of one index may start from. The market's own first
day, and the calendar's, is `calendar.history_start()` (VNINDEX's first session)."""

from __future__ import annotations

from datetime import date

from ingestion_pipelines.vnmarket.calendar import MARKET_OPENED

# The first day of each index's daily history, as its exchange published it (sources below).
INDEX_HISTORY_START: dict[str, date] = {
    # HOSTC's first session, VN-Index base 100 (the market's opening, above)
    "VNINDEX": MARKET_OPENED,
    # HaSTC's share trading began in July 2005 (marketswiki.com/wiki/HaSTC_Index: launched March
    # 2005, "followed four months later by a secondary share-trading market"); the day, 14 July
    # 2005, is the commonly cited base date of the HaSTC-Index and was not confirmed by a source
    "HNXINDEX": date(2005, 7, 14),
    # UPCoM's first session (HNX Fact Book 2009, yumpu.com/en/document/view/36527034/fact-book-
    # 2009-hnx/127; base date 24/6/2009: simplize.vn/chi-so/UPINDEX)
    "UPCOMINDEX": date(2009, 6, 24),
    # HNX30: base date 3 January 2012, 100 points; computed back from there when it went live on
    # 9 July 2012 (hnx.vn/en/hnx-30; vneconomy.vn/cong-bo-bieu-do-so-sanh-chi-so-hnx30-va-hnx-index.htm)
    "HNX30": date(2012, 1, 3),
    # VN30's launch day, first close 447.47 (VCSC Daily "VN30 launched successfully ...",
    # vietcap.com.vn/en/research-center/vcsc-daily-vn30-launched-successfully-closes-down-0-43-
    # vietnamese-equities-take-a-breather-nearly-20-of-businesses-announced-losses-in-the-fourth-
    # quarter: "Today marked the launch of the VN30"; the note's date was not in what was read)
    "VN30": date(2012, 2, 6),
}


def index_history_start(index_code: str) -> date:
    """The first day of `index_code`'s daily history (a clear error for an unknown index)."""
    try:
        return INDEX_HISTORY_START[index_code]
    except KeyError:
        raise ValueError(
            f"no history start known for index {index_code!r} ({sorted(INDEX_HISTORY_START)})"
        ) from None
