"""Schedules, cron overrides at load time, and loading the definitions."""

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from ingestion_pipelines.config.chain import ConfigChain
from ingestion_pipelines.core.settings import PROJECT_ROOT
from ingestion_pipelines.definitions import build_definitions
from ingestion_pipelines.storage.engines import dispose_all

ICT = ZoneInfo("Asia/Ho_Chi_Minh")


def schedule(defs, name):
    return next(s for s in defs.schedules if s.name == name)


def evaluate(defs, name, when):
    context = dg.build_schedule_context(
        scheduled_execution_time=when, repository_def=defs.get_repository_def()
    )
    return schedule(defs, name).evaluate_tick(context).run_requests


def test_schedules_run_in_ict_and_target_the_days_partition(sqlite_url, monkeypatch):
    monkeypatch.setenv("INGEST_DATABASE_URL", sqlite_url)
    defs = build_definitions()
    nav = schedule(defs, "fmarket_nav_schedule")
    assert (nav.cron_schedule, nav.execution_timezone) == ("45 18 * * *", "Asia/Ho_Chi_Minh")
    assert nav.default_status == dg.DefaultScheduleStatus.RUNNING
    # The NAV schedule collects the latest trading day whose NAV is due (by 18:00 ICT of the
    # next trading day): on Monday the 23rd at 18:45 ICT, Friday the 20th's.
    (request,) = evaluate(defs, "fmarket_nav_schedule", datetime(2026, 11, 23, 18, 45, tzinfo=ICT))
    assert request.partition_key == "2026-11-20"
    assert request.tags["ingest/worker"] == "fmarket_nav"
    # On Saturday the 28th, Friday the 27th's NAV is not due until Monday: Thursday's.
    (request,) = evaluate(defs, "fmarket_nav_schedule", datetime(2026, 11, 28, 18, 45, tzinfo=ICT))
    assert request.partition_key == "2026-11-26"
    # Fear & Greed partitions are UTC days: 06:15 ICT on the 24th is still the 23rd in UTC.
    (request,) = evaluate(defs, "fear_greed_schedule", datetime(2026, 11, 24, 6, 15, tzinfo=ICT))
    assert request.partition_key == "2026-11-23"
    (request,) = evaluate(
        defs, "coingecko_markets_schedule", datetime(2026, 11, 24, 6, 15, tzinfo=ICT)
    )
    assert request.partition_key is None
    assert schedule(defs, "coingecko_markets_schedule").cron_schedule == "*/5 * * * *"
    dispose_all()


def test_a_reader_schedule_waits_until_its_writer_has_stored_once(sqlite_url, monkeypatch):
    # vn_stock_eod asks for the stocks vn_stocks stores: before that, its tick is skipped, not a
    # run that fails on an empty `stock` table
    monkeypatch.setenv("INGEST_DATABASE_URL", sqlite_url)
    defs = build_definitions()
    when, repository = datetime(2026, 11, 24, 16, 30, tzinfo=ICT), defs.get_repository_def()
    with dg.instance_for_test() as instance:

        def tick():
            context = dg.build_schedule_context(
                instance=instance, scheduled_execution_time=when, repository_def=repository
            )
            return schedule(defs, "vn_stock_eod_schedule").evaluate_tick(context)

        skipped = tick()
        assert not skipped.run_requests and "vn_stocks" in skipped.skip_message
        instance.report_runless_asset_event(dg.AssetMaterialization("vn_stocks"))
        (request,) = tick().run_requests
        assert request.partition_key == "2026-11-23"  # the newest day due at 16:30 (calendar)
    dispose_all()


def test_cron_comes_from_the_config_chain_when_the_definitions_load(sqlite_url, monkeypatch):
    monkeypatch.setenv("INGEST_DATABASE_URL", sqlite_url)
    ConfigChain(sqlite_url).set("fmarket_nav", "cron", "0 20 * * 1-5", updated_by="test")
    monkeypatch.setenv("INGEST_CAFEF_NEWS__CRON", "*/30 * * * *")
    defs = build_definitions()
    assert schedule(defs, "fmarket_nav_schedule").cron_schedule == "0 20 * * 1-5"
    assert schedule(defs, "cafef_news_schedule").cron_schedule == "*/30 * * * *"
    assert schedule(defs, "vnexpress_news_schedule").cron_schedule == "5 * * * *"
    dispose_all()


def _load_time(monkeypatch, database_url: str):
    monkeypatch.setenv("INGEST_DATABASE_URL", database_url)
    started = time.perf_counter()
    defs = build_definitions()
    return time.perf_counter() - started, defs


def test_a_database_that_is_down_never_fails_or_slows_loading(monkeypatch, sqlite_url):
    # side by side with a reachable database, so the machine's load cancels out (the absolute
    # load time is benchmarks/definitions_load.py's); the first load warms the caches
    _load_time(monkeypatch, sqlite_url)
    reachable, _ = _load_time(monkeypatch, sqlite_url)
    down, defs = _load_time(monkeypatch, "mysql+pymysql://ingest:pw@127.0.0.1:1/ingest")
    assert down < 1.5 * reachable + 0.5, (down, reachable)
    assert schedule(defs, "fmarket_nav_schedule").cron_schedule == "45 18 * * *"
    assert {a.key.to_user_string() for a in defs.assets} >= {
        "fmarket_funds",
        "fmarket_nav",
        "vnexpress_news",
        "cafef_news",
        "coingecko_markets",
        "fear_greed",
    }


def test_dagster_definitions_validate_passes_with_no_database_server(isolated_env):
    dagster = Path(sys.executable).parent / "dagster"
    env = {**os.environ, "INGEST_DATABASE_URL": "mysql+pymysql://ingest:pw@127.0.0.1:1/ingest"}
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(PROJECT_ROOT / "workspace.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Validation successful" in result.stdout + result.stderr


def test_definitions_module_never_imports_the_sidecar():
    code = (
        "import sys, ingestion_pipelines.definitions\n"
        "bad = [m for m in sys.modules if m.startswith('ingestion_pipelines.sidecar')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, capture_output=True)
