"""Calendar-aware freshness of the sources published "hourly during business hours" (gold and
FX boards): expected silence (nights, weekends, Tết) passes, a silent business day fails, both
by the rule (vnmarket.business_hours) and through the Dagster check and sensor that report it."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import pytest

from ingestion_pipelines.sources.business_freshness import CHECK_NAME, business_freshness_defs
from ingestion_pipelines.sources.declared import load_declared_sources
from ingestion_pipelines.vnmarket.business_hours import BusinessHours, judge
from ingestion_pipelines.vnmarket.calendar import ICT

FX = BusinessHours.of({"days": "mon-fri", "hours": "08:00-17:00", "silence": "2h"})
GOLD = BusinessHours.of({"days": "mon-sat", "hours": "08:00-17:00", "silence": "2h"})


def ict(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ICT)


@pytest.mark.parametrize(
    ("hours", "last_run", "now"),
    [
        (FX, "2026-12-04 17:00", "2026-12-06 09:30"),  # Sunday morning, last board Friday
        (FX, "2026-12-04 17:00", "2026-12-07 09:59"),  # Monday, 1h59 into the business day
        (GOLD, "2026-12-05 17:00", "2026-12-06 11:00"),  # gold: Saturday's board, Sunday
        (FX, "2026-02-13 17:00", "2026-02-20 11:00"),  # Tết 2026 (16-20 February): closed
        (FX, "2026-02-13 17:00", "2026-02-23 09:30"),  # the first day after Tết, early
        (FX, "2026-12-08 16:30", "2026-12-09 03:00"),  # a night
    ],
)
def test_expected_silence_passes(hours, last_run, now):
    verdict = judge("vn_fx_rates", hours, ict(last_run), ict(now))
    assert verdict.passed, verdict.description


@pytest.mark.parametrize(
    ("hours", "last_run", "now"),
    [
        (FX, "2026-12-07 17:00", "2026-12-08 12:00"),  # a silent Tuesday morning
        (FX, "2026-12-04 17:00", "2026-12-07 10:01"),  # Monday: 08:00-10:01 without a board
        (GOLD, "2026-12-04 17:00", "2026-12-05 10:30"),  # gold's Saturday counts
        (FX, "2026-02-13 17:00", "2026-02-23 10:30"),  # Tết over, the bank still silent
        (FX, "2026-10-01 12:00", "2026-12-08 12:00"),  # silent for weeks
    ],
)
def test_unexpected_silence_fails(hours, last_run, now):
    verdict = judge("vn_fx_rates", hours, ict(last_run), ict(now))
    assert not verdict.passed and "silent for more than 2h00m" in verdict.description


def test_never_answered_fails_and_the_rule_refuses_a_bad_declaration():
    assert not judge("vn_fx_rates", FX, None, ict("2026-12-06 09:00")).passed
    with pytest.raises(ValueError, match="days"):
        BusinessHours.of({"days": "daily", "hours": "08:00-17:00"})
    with pytest.raises(ValueError, match="hours"):
        BusinessHours.of({"hours": "17:00-08:00"})


def test_the_gold_and_fx_workers_declare_it_and_have_no_wall_clock_window():
    sources = load_declared_sources()
    for worker_id, days in (
        ("vn_gold_prices", "mon-sat"),
        ("vn_gold_prices_pnj", "mon-sat"),
        ("vn_fx_rates", "mon-fri"),
    ):
        assert sources[worker_id].business_hours.days == days
        defs = business_freshness_defs(sources[worker_id])
        assert [s.name for s in defs.sensors] == [f"{worker_id}_business_freshness"]


def test_the_sensor_fails_a_source_silent_since_it_was_first_watched_until_it_answers():
    import json
    import time

    source = load_declared_sources()["vn_fx_rates"]
    (sensor,) = business_freshness_defs(source).sensors
    key = dg.AssetKey(["vn_fx_rates"])
    with dg.instance_for_test() as instance:
        # a new deployment: never answered, watched from now on, not failing yet
        (event,) = sensor(dg.build_sensor_context(instance=instance)).asset_events
        assert (event.asset_key, event.check_name, event.passed) == (key, CHECK_NAME, True)
        assert "never answered" in event.description
        # watched for 30 days without an answer: unexpected silence
        month_ago = json.dumps({"passed": True, "at": 0, "watched": time.time() - 30 * 86400})
        result = sensor(dg.build_sensor_context(instance=instance, cursor=month_ago))
        (event,) = result.asset_events
        assert not event.passed and "never answered" in event.description
        instance.report_runless_asset_event(dg.AssetMaterialization(key))
        context = dg.build_sensor_context(instance=instance, cursor=result.cursor)
        (event,) = sensor(context).asset_events  # changed: reported at once
        assert event.passed, event.description
