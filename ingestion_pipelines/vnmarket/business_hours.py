"""When a source that publishes during business hours is expected to be silent, and when its
silence is a failure (gold houses' boards, a bank's exchange rates: "hourly during business
hours").

A declared source says its hours in its defs.yaml::

    business_hours: {days: mon-sat, hours: "08:00-17:00", silence: 2h}

Silence is measured in business time only: the hours of business days (Monday to Friday, or to
Saturday) between `hours`, ICT, that passed since the source last answered. A night, a Sunday, a
public holiday or Tết adds nothing, so a Sunday morning or the Tết week never fails; a business
day with no answer for longer than `silence` always does. Business days are the market
calendar's trading days (`vnmarket.calendar`: its reviewed holidays and compensatory days off);
a Saturday counts, for `mon-sat`, unless it is a public holiday.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from ingestion_pipelines.core.timezones import ICT
from ingestion_pipelines.vnmarket import calendar as market_calendar

DAYS = {"mon-fri": 5, "mon-sat": 6}
_LOOKBACK_DAYS = 60  # longer than any closed stretch (Tết and weekends: at most 11 days)


@dataclass(frozen=True)
class BusinessHours:
    """Business days (`days`: mon-fri or mon-sat) and hours [opens, closes) ICT, and how much
    business time without an answer is still fine (`silence`)."""

    days: str
    opens: time
    closes: time
    silence: timedelta

    @classmethod
    def of(cls, declared: dict) -> BusinessHours:
        """Read ``{days: mon-sat, hours: "08:00-17:00", silence: 2h}`` (a clear error if not)."""
        unknown = set(declared) - {"days", "hours", "silence"}
        if unknown:
            raise ValueError(f"business_hours: unknown keys {sorted(unknown)}")
        days = declared.get("days", "mon-fri")
        if days not in DAYS:
            raise ValueError(f"business_hours.days must be one of {sorted(DAYS)}, got {days!r}")
        try:
            opens, closes = (time.fromisoformat(t.strip()) for t in declared["hours"].split("-"))
        except (KeyError, ValueError, AttributeError):
            raise ValueError("business_hours.hours must read like 08:00-17:00") from None
        if opens >= closes:
            raise ValueError(f"business_hours.hours: {opens} is not before {closes}")
        return cls(days, opens, closes, _silence(str(declared.get("silence", "2h"))))

    def is_business_day(self, day: date) -> bool:
        """Whether `day` is a business day (a trading day; a Saturday only for mon-sat)."""
        if day.weekday() >= DAYS[self.days]:
            return False
        if day.weekday() == 5:  # a Saturday of a mon-sat source: open unless a public holiday
            return market_calendar.public_holiday(day) is None
        return market_calendar.is_trading_day(day)

    def business_time(self, since: datetime, until: datetime, cap: timedelta) -> timedelta:
        """Business time between `since` and `until` (aware), counted back from `until` and
        stopped once it exceeds `cap` (or `_LOOKBACK_DAYS` days back)."""
        total = timedelta()
        day = until.astimezone(ICT).date()
        for _ in range(_LOOKBACK_DAYS):
            if self.is_business_day(day):
                start = max(datetime.combine(day, self.opens, ICT), since)
                end = min(datetime.combine(day, self.closes, ICT), until)
                total += max(end - start, timedelta())
            if total > cap or datetime.combine(day, time(0), ICT) <= since:
                break
            day -= timedelta(days=1)
        return total


@dataclass(frozen=True)
class Silence:
    """The verdict on a source's silence at `now`."""

    passed: bool
    description: str
    business_silence: timedelta | None


def judge(worker_id: str, hours: BusinessHours, last_seen: datetime | None, now: datetime):
    """Whether `worker_id`, last answering at `last_seen` (None: never), is fresh at `now`."""
    if last_seen is None:
        return Silence(False, f"{worker_id} has never answered", None)
    silent = hours.business_time(last_seen, now, hours.silence)
    local = now.astimezone(ICT)
    if silent > hours.silence:
        return Silence(
            False,
            f"{worker_id}: silent for more than {_text(hours.silence)} of business hours "
            f"(last answer {last_seen.astimezone(ICT):%Y-%m-%d %H:%M} ICT, now "
            f"{local:%Y-%m-%d %H:%M} ICT)",
            silent,
        )
    why = _quiet_reason(hours, local)
    return Silence(
        True,
        f"{worker_id}: {_text(silent)} of business hours without an answer (limit "
        f"{_text(hours.silence)}){f'; silence expected: {why}' if why else ''}",
        silent,
    )


def _quiet_reason(hours: BusinessHours, local: datetime) -> str | None:
    if not hours.is_business_day(local.date()):
        return f"{local.date()} is not a business day ({_closure(local.date())})"
    if not hours.opens <= local.time() < hours.closes:
        return f"outside business hours ({hours.opens:%H:%M}-{hours.closes:%H:%M} ICT)"
    return None


def _closure(day: date) -> str:
    return market_calendar.public_holiday(day) or market_calendar.closure(day) or "closed"


def _silence(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*([mh])\s*", text)
    if match is None:
        raise ValueError(f"business_hours.silence must read like 90m or 2h, got {text!r}")
    return timedelta(**{"minutes" if match[2] == "m" else "hours": int(match[1])})


def _text(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"
