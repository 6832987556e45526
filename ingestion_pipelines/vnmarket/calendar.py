"""The Vietnamese stock market's calendar: trading days, trading sessions (ICT) and when each
dataset is due. Dagster-free: the factory, the feeds' checks, the CLI and the demo ask it.

Trading days. HOSE, HNX and UPCoM (and the HNX derivatives market) share one calendar: Monday to
Friday, except the public holidays of the Labour Code with the compensatory and swapped days off
the government announces for them, which the exchanges take (Tết, Hùng Kings, 30/4, 1/5, 2/9, 1/1
and, from 2026, 24/11). Those come from the maintained `holidays` library (`holidays.VN`, which
carries the announced swaps as "Day off (substituted from ...)"); where the exchanges' own
published schedule differs from it, `market_calendar.csv` overrides it, one reviewed row per
date with its source. A Saturday make-up working day is never a trading day (the exchanges
announce it as such, e.g. for 4 May 2024 and 22 August 2026). Each year 2015-2027 was checked
against the announcements that could be found, and each year 2000-2014 too (the history of the
indices: VNINDEX from the market's first session, 28 July 2000; `history_start()`), with the
Labour Code of the time (four Tết days before 2013, Hùng Kings' day from 2007, both as the
library gives them); `market_calendar_review.csv` says, per year, what was confirmed, from which
source, and where no announcement was found (`reviews()`). No day before 28 July 2000 trades.
Closed days are computed per year on first use and cached (the library's first call dominates).

Sessions (ICT, no daylight saving). Continuous trading 09:00-11:30 and 13:00-14:30 for every
board, a lunch break between them; HOSE opens with an opening auction 09:00-09:15; HOSE, HNX and
derivatives close with a closing auction 14:30-14:45; HNX's post-close session runs to 15:00 and
UPCoM trades continuously until 15:00; derivatives open with an auction at 08:45.

Deadlines. A dataset about a trading day is due at a fixed time of a later trading day (a fund's
NAV: by 18:00 ICT of the next trading day). A non-trading day has no data to expect.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from importlib import resources

from ingestion_pipelines.core.timezones import ICT

REVIEWED_YEARS = range(2000, 2028)
# HOSTC's first session (VN-Index 100): no trading day before it.
MARKET_OPENED = date(2000, 7, 28)
OVERRIDES_FILE = "market_calendar.csv"
REVIEW_FILE = "market_calendar_review.csv"
# The library's holidays of the reviewed years, written once (`write_holiday_cache`): reading it
# spares every definition load the library's import (about 1 s: it loads every country); a test
# keeps it equal to the library's.
HOLIDAY_CACHE_FILE = "market_calendar_holidays.csv"
REVIEW_VERDICTS = ("confirmed", "partial", "not_found")
_SEARCH_LIMIT_DAYS = 60  # longer than any run of closed days (Tết plus weekends is at most 11)


class Exchange(StrEnum):
    """A Vietnamese market. They share trading days; their sessions differ."""

    HOSE = "HOSE"
    HNX = "HNX"
    UPCOM = "UPCOM"
    DERIVATIVES = "DERIVATIVES"  # VN30 index futures and government-bond futures, on HNX


@dataclass(frozen=True)
class Phase:
    """A part of a trading day: `kind` is auction or continuous; `end` is exclusive."""

    name: str
    start: time
    end: time
    kind: str = "continuous"


_CONTINUOUS_MORNING = Phase("morning", time(9, 0), time(11, 30))
_AFTERNOON = Phase("afternoon", time(13, 0), time(14, 30))
_CLOSING_AUCTION = Phase("closing_auction", time(14, 30), time(14, 45), "auction")

PHASES: dict[Exchange, tuple[Phase, ...]] = {
    Exchange.HOSE: (
        Phase("opening_auction", time(9, 0), time(9, 15), "auction"),
        Phase("morning", time(9, 15), time(11, 30)),
        _AFTERNOON,
        _CLOSING_AUCTION,
    ),
    Exchange.HNX: (
        _CONTINUOUS_MORNING,
        _AFTERNOON,
        _CLOSING_AUCTION,
        Phase("post_close", time(14, 45), time(15, 0), "auction"),
    ),
    Exchange.UPCOM: (_CONTINUOUS_MORNING, Phase("afternoon", time(13, 0), time(15, 0))),
    Exchange.DERIVATIVES: (
        Phase("opening_auction", time(8, 45), time(9, 0), "auction"),
        _CONTINUOUS_MORNING,
        _AFTERNOON,
        _CLOSING_AUCTION,
    ),
}
LUNCH_BREAK = (time(11, 30), time(13, 0))

# Feeds of the Vietnamese market and the sessions their silence is judged by. SSI iBoard's default
# symbols are HOSE stocks; HOSE's hours lie inside every other board's, so no alert is ever raised
# for a board that is still legitimately quiet.
FEED_EXCHANGES: dict[str, Exchange] = {"ssi_iboard": Exchange.HOSE}
# Derived datasets with one partition per complete trading day of a market.
TRADING_DAY_DATASETS: dict[str, Exchange] = {"ssi_trade_bars_1m": Exchange.HOSE}


@dataclass(frozen=True)
class Session:
    """One uninterrupted stretch of trading on one day (the morning or the afternoon), in ICT."""

    day: date
    name: str
    start: datetime
    end: datetime

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


# ---- trading days -------------------------------------------------------------------------


@dataclass(frozen=True)
class Override:
    """A reviewed row of `market_calendar.csv`: the exchanges' own schedule for one date."""

    day: date
    closed: bool
    reason: str
    source: str


@functools.cache
def overrides() -> dict[date, Override]:
    """The reviewed exchange-only closures and openings, by date."""
    text = resources.files(__package__).joinpath(OVERRIDES_FILE).read_text("utf-8")
    rows = {}
    for row in csv.DictReader(text.splitlines()):
        if row["status"] not in ("open", "closed"):
            raise ValueError(f"{OVERRIDES_FILE}: status must be open or closed: {row}")
        day = date.fromisoformat(row["date"])
        rows[day] = Override(day, row["status"] == "closed", row["reason"], row["source"])
    return rows


@dataclass(frozen=True)
class Review:
    """How one year of the calendar was checked: `verdict` is confirmed (the exchanges'
    published schedule matches), partial (some closures confirmed, the others are the Labour
    Code's) or not_found (no announcement found; the Labour Code's holidays only)."""

    year: int
    verdict: str
    checked: str
    source: str


@functools.cache
def reviews() -> dict[int, Review]:
    """The review of each year of the calendar, by year."""
    text = resources.files(__package__).joinpath(REVIEW_FILE).read_text("utf-8")
    found = {}
    for row in csv.DictReader(text.splitlines()):
        if row["verdict"] not in REVIEW_VERDICTS:
            raise ValueError(f"{REVIEW_FILE}: verdict must be one of {REVIEW_VERDICTS}: {row}")
        year = int(row["year"])
        found[year] = Review(year, row["verdict"], row["checked"], row["source"])
    return found


def library_holidays(year: int) -> dict[date, str]:
    """The Labour Code's holidays of `year` as the `holidays` library gives them (imported here:
    its import is slow and the reviewed years are read from the cache)."""
    import holidays

    return dict(holidays.VN(years=year, language="en_US").items())


@functools.cache
def _cached_holidays() -> dict[int, dict[date, str]]:
    text = resources.files(__package__).joinpath(HOLIDAY_CACHE_FILE).read_text("utf-8")
    found: dict[int, dict[date, str]] = {year: {} for year in REVIEWED_YEARS}
    for row in csv.DictReader(text.splitlines()):
        day = date.fromisoformat(row["date"])
        found.setdefault(day.year, {})[day] = row["holiday"]
    return found


@functools.cache
def _public_holidays(year: int) -> dict[date, str]:
    if year in REVIEWED_YEARS:
        return _cached_holidays()[year]
    return library_holidays(year)


def write_holiday_cache(path) -> None:
    """Write the library's holidays of the reviewed years to `path` (the cache file, after a
    library upgrade or a new reviewed year)."""
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["date", "holiday"])
        for year in REVIEWED_YEARS:
            for day, name in sorted(library_holidays(year).items()):
                writer.writerow([day.isoformat(), name])


def public_holiday(day: date) -> str | None:
    """The public holiday (or compensatory day off) of the Labour Code on `day`, or None."""
    return _public_holidays(day.year).get(day)


def closure(day: date) -> str | None:
    """Why the exchanges are closed on `day` (e.g. "Saturday", "Lunar New Year"), or None when
    it is a trading day."""
    if day < MARKET_OPENED:
        return f"before the market opened ({MARKET_OPENED})"
    override = overrides().get(day)
    if override is not None:
        return override.reason if override.closed else None
    if day.weekday() >= 5:
        return day.strftime("%A")
    return _public_holidays(day.year).get(day)


def is_trading_day(day: date) -> bool:
    return closure(day) is None


def next_trading_day(day: date) -> date:
    """The first trading day after `day`."""
    return _step(day, 1)


def previous_trading_day(day: date) -> date:
    """The last trading day before `day`."""
    return _step(day, -1)


def _step(day: date, direction: int) -> date:
    for _ in range(_SEARCH_LIMIT_DAYS):
        day += timedelta(days=direction)
        if is_trading_day(day):
            return day
    raise ValueError(f"no trading day within {_SEARCH_LIMIT_DAYS} days of {day}")


def trading_days(start: date, end: date) -> Iterator[date]:
    """Trading days from `start` inclusive to `end` exclusive."""
    day = start
    while day < end:
        if is_trading_day(day):
            yield day
        day += timedelta(days=1)


def non_trading_days(start: date, end: date) -> list[date]:
    """Days from `start` inclusive to `end` exclusive on which the exchanges are closed."""
    return [
        start + timedelta(days=i)
        for i in range((end - start).days)
        if closure(start + timedelta(days=i))
    ]


def history_start() -> date:
    """The first trading day of the calendar's history (the market's first session): where
    trading-day partitions of the whole market (``vn_indices``) may start. Each index's own
    first day: `vnmarket.index_history.index_history_start`."""
    return MARKET_OPENED


def calendar_end() -> date:
    """The first day past the reviewed calendar (its last year's 31 December, exclusive)."""
    return date(REVIEWED_YEARS[-1] + 1, 1, 1)


def closed_weekdays(start: date) -> list[date]:
    """Weekdays from `start` to the end of the reviewed calendar on which the exchanges are
    closed: what trading-day partitions exclude beside weekends."""
    return [day for day in non_trading_days(start, calendar_end()) if day.weekday() < 5]


# ---- sessions -----------------------------------------------------------------------------


def sessions(day: date, exchange: Exchange = Exchange.HOSE) -> list[Session]:
    """The morning and afternoon sessions of `day` (auctions included), none when closed."""
    if not is_trading_day(day):
        return []
    phases = PHASES[exchange]
    morning = [p for p in phases if p.start < LUNCH_BREAK[0]]
    afternoon = [p for p in phases if p.start >= LUNCH_BREAK[1]]
    return [
        Session(
            day,
            name,
            datetime.combine(day, part[0].start, ICT),
            datetime.combine(day, part[-1].end, ICT),
        )
        for name, part in (("morning", morning), ("afternoon", afternoon))
    ]


def phase_at(moment: datetime, exchange: Exchange = Exchange.HOSE) -> Phase | None:
    """The phase trading is in at `moment`, or None when the market is not trading."""
    local = moment.astimezone(ICT)
    if not is_trading_day(local.date()):
        return None
    clock = local.time()
    return next((p for p in PHASES[exchange] if p.start <= clock < p.end), None)


def next_session(moment: datetime, exchange: Exchange = Exchange.HOSE) -> Session:
    """The session in progress at `moment`, or the next one to start."""
    day = moment.astimezone(ICT).date()
    for _ in range(_SEARCH_LIMIT_DAYS):
        for session in sessions(day, exchange):
            if moment < session.end:
                return session
        day += timedelta(days=1)
    raise ValueError(f"no session within {_SEARCH_LIMIT_DAYS} days of {moment}")


@dataclass(frozen=True)
class MarketState:
    """Whether `exchange` trades at `at`; when not, why silence is expected and until when."""

    at: datetime
    exchange: Exchange
    open: bool
    phase: str | None
    reason: str
    next_open: datetime | None  # None while open
    session: Session  # the session in progress, or the next one

    @property
    def silence_expected(self) -> bool:
        return not self.open


def market_state(moment: datetime, exchange: Exchange = Exchange.HOSE) -> MarketState:
    """What the market is doing at `moment` (an aware datetime)."""
    local = moment.astimezone(ICT)
    session = next_session(moment, exchange)
    phase = phase_at(moment, exchange)
    if phase is not None:
        return MarketState(
            moment, exchange, True, phase.name, f"{exchange} trading ({phase.name})", None, session
        )
    why = closure(local.date())
    if why is not None:
        reason = f"{local.date()} is not a trading day ({why})"
    elif local.time() < PHASES[exchange][0].start:
        reason = "before the opening"
    elif LUNCH_BREAK[0] <= local.time() < LUNCH_BREAK[1]:
        reason = "lunch break"
    else:
        reason = "after the close"
    return MarketState(moment, exchange, False, None, reason, session.start, session)


# ---- publication deadlines ----------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    """Data about trading day D is due at `at` ICT on the trading day `trading_days_after` D."""

    dataset: str
    trading_days_after: int
    at: time
    description: str

    def due_at(self, day: date) -> datetime | None:
        """When the data of `day` is due; None when `day` is not a trading day (no data)."""
        if not is_trading_day(day):
            return None
        target = day
        for _ in range(self.trading_days_after):
            target = next_trading_day(target)
        return datetime.combine(target, self.at, ICT)


# The publication deadlines of Python workers (none today: every one is declared in its
# defs.yaml's `partitions.deadline`, read by `declared_deadlines`).
DEADLINES: dict[str, Deadline] = {}


def deadline(dataset: str) -> Deadline | None:
    """`dataset`'s publication deadline: a Python worker's in `DEADLINES`, a YAML source's in its
    defs.yaml (`partitions.deadline: {at: "17:00", trading_days_after: 0, why: ...}`)."""
    return DEADLINES.get(dataset) or declared_deadlines().get(dataset)


@functools.cache
def declared_deadlines() -> dict[str, Deadline]:
    """The deadlines the YAML sources declare, by worker id (read once from their defs.yaml)."""
    from ingestion_pipelines.storage.declared import declarations

    found = {}
    for declaration in declarations():
        rule = (declaration.attributes.get("partitions") or {}).get("deadline")
        if rule:
            found[declaration.worker_id] = Deadline(
                declaration.worker_id,
                int(rule.get("trading_days_after", 0)),
                time.fromisoformat(str(rule["at"])),
                str(rule["why"]),
            )
    return found


def _rule(dataset: str) -> Deadline:
    rule = deadline(dataset)
    if rule is None:
        raise KeyError(f"{dataset} has no publication deadline")
    return rule


def latest_due_day(dataset: str, moment: datetime) -> date:
    """The latest trading day whose data for `dataset` is due at `moment`."""
    rule = _rule(dataset)
    day = moment.astimezone(ICT).date()
    if not is_trading_day(day):
        day = previous_trading_day(day)
    for _ in range(_SEARCH_LIMIT_DAYS):
        due = rule.due_at(day)
        if due is not None and due <= moment:
            return day
        day = previous_trading_day(day)
    raise ValueError(f"{dataset}: nothing due within {_SEARCH_LIMIT_DAYS} days of {moment}")


@dataclass(frozen=True)
class Expectation:
    """What to expect of `dataset` for the days [start, end) at `at`."""

    due_days: tuple[date, ...]  # trading days whose deadline has passed
    pending_days: tuple[date, ...]  # trading days not due yet
    closed_days: tuple[date, ...]  # no data expected

    @property
    def rows_required(self) -> bool:
        return bool(self.due_days)

    def explain(self) -> str:
        parts = []
        if self.closed_days:
            shown = ", ".join(f"{d} ({closure(d)})" for d in self.closed_days[:5])
            more = f" and {len(self.closed_days) - 5} more" if len(self.closed_days) > 5 else ""
            parts.append(f"no data expected for non-trading days: {shown}{more}")
        if self.pending_days:
            parts.append(f"not due yet: {', '.join(map(str, self.pending_days[:5]))}")
        if self.due_days:
            parts.append(f"due: {len(self.due_days)} trading day(s) up to {self.due_days[-1]}")
        return "; ".join(parts)


def expectation(dataset: str, start: date, end: date, at: datetime) -> Expectation:
    """Which days of [start, end) must hold data of `dataset` at `at`."""
    rule = _rule(dataset)
    due, pending, closed = [], [], []
    day = start
    while day < end:
        due_at = rule.due_at(day)
        (closed if due_at is None else due if due_at <= at else pending).append(day)
        day += timedelta(days=1)
    return Expectation(tuple(due), tuple(pending), tuple(closed))


# ---- for `ingest status` ------------------------------------------------------------------


def status_for(worker_id: str, now: datetime) -> dict[str, object] | None:
    """What the calendar says about `worker_id` at `now` (None when it follows no market):
    for a market feed, whether the market trades, whether silence is expected and the next
    session; for a trading-day dataset, also its latest complete day (its newest partition);
    for a dataset with a deadline, the latest day due and the rule."""
    info: dict[str, object] = {}
    exchange = FEED_EXCHANGES.get(worker_id) or TRADING_DAY_DATASETS.get(worker_id)
    if exchange is not None:
        state = market_state(now, exchange)
        info.update(
            exchange=str(exchange),
            open=state.open,
            reason=state.reason,
            silence_expected=state.silence_expected,
            next_session=state.session.start.isoformat(),
            session_ends=state.session.end.isoformat(),
        )
    if worker_id in TRADING_DAY_DATASETS:
        info["latest_complete_day"] = previous_trading_day(now.astimezone(ICT).date()).isoformat()
    rule = deadline(worker_id)
    if rule is not None:
        info.update(
            latest_due_day=latest_due_day(worker_id, now).isoformat(), due_rule=rule.description
        )
    return info or None
