"""The SSI feed is judged by the Vietnamese market's sessions: silence at night, at lunch, on
weekends and holidays is expected; inside a session the sidecar must be alive and data must
arrive (an empty session on a trading day fails)."""

from datetime import datetime, timedelta

import dagster as dg
import pytest

from ingestion_pipelines.feeds import defs as feed_defs
from ingestion_pipelines.vnmarket.calendar import ICT

SSI = "ssi_iboard"


def ict(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ICT)


def row(now: datetime, *, heartbeat_s: float = 5, data_s: float | None = 5):
    return {
        "status": "running",
        "heartbeat_at": now - timedelta(seconds=heartbeat_s),
        "last_success_at": None if data_s is None else now - timedelta(seconds=data_s),
    }


@pytest.mark.parametrize(
    ("moment", "why"),
    [
        ("2026-11-30 12:15", "lunch break"),
        ("2026-11-30 22:00", "after the close"),
        ("2026-11-30 07:00", "before the opening"),
        ("2026-11-28 10:00", "Saturday"),
        ("2026-02-17 10:00", "Lunar New Year"),
    ],
)
def test_silence_outside_sessions_passes_and_says_why(moment, why):
    now = ict(moment)
    # The sidecar has been silent for a day: still not a failure outside a session.
    verdict = feed_defs.judge_feed(SSI, row(now, heartbeat_s=86400, data_s=86400), now=now)
    assert verdict.passed
    assert "silence expected" in verdict.description and why in verdict.description


def test_inside_a_session_a_live_feed_with_data_passes():
    now = ict("2026-11-30 10:00")
    verdict = feed_defs.judge_feed(SSI, row(now), now=now)
    assert verdict.passed and verdict.severity == dg.AssetCheckSeverity.ERROR


def test_an_empty_session_on_a_trading_day_fails():
    now = ict("2026-11-30 13:20")
    # Alive, but the last data is from the morning session.
    verdict = feed_defs.judge_feed(SSI, row(now, data_s=2 * 3600), now=now)
    assert not verdict.passed
    assert "no data in the afternoon session since 13:00 ICT" in verdict.description


def test_the_first_minutes_of_a_session_are_not_judged_empty():
    now = ict("2026-11-30 13:05")
    assert feed_defs.judge_feed(SSI, row(now, data_s=2 * 3600), now=now).passed


def test_data_stopping_mid_session_fails():
    now = ict("2026-11-30 10:30")
    verdict = feed_defs.judge_feed(SSI, row(now, data_s=20 * 60), now=now)
    assert not verdict.passed and "no data since 10:10 ICT" in verdict.description


def test_a_dead_sidecar_inside_a_session_fails():
    now = ict("2026-11-30 10:30")
    assert not feed_defs.judge_feed(SSI, row(now, heartbeat_s=600), now=now).passed


def test_feeds_outside_the_market_keep_the_plain_heartbeat():
    now = ict("2026-11-28 12:15")  # Saturday lunch time: Binance trades anyway
    verdict = feed_defs.judge_feed("binance_trades", row(now, heartbeat_s=600), now=now)
    assert not verdict.passed


def test_a_feed_that_never_reported_is_a_setup_problem_at_any_hour():
    verdict = feed_defs.judge_feed(SSI, None, now=ict("2026-11-30 12:15"))
    assert not verdict.passed and "never reported" in verdict.description
