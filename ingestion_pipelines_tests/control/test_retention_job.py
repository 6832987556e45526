"""`ingest retention`, `ingest archive restore` and the scheduled `retention` job, end to end on a
real SQLite database and a local archive folder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from ingestion_pipelines.cli import main
from ingestion_pipelines.control.retention_defs import RETENTION_SCHEDULE, retention_job
from ingestion_pipelines.definitions import build_definitions
from ingestion_pipelines.resources.database import DatabaseResource
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import execution_log, trade_tick
from ingestion_pipelines.storage.upsert import upsert


def _seed(url: str) -> datetime:
    engine = ensure_schema(url)
    old = datetime.now(UTC) - timedelta(days=40)
    rows = [
        {
            "source": "binance",
            "symbol": "BTCUSDT",
            "trade_id": n,
            "price": Decimal("100.000000000000000001") + n,
            "quantity": Decimal("0.5"),
            "side": "buy",
            "traded_at": (old if n < 5 else datetime.now(UTC)) + timedelta(seconds=n),
            "received_at": old,
            "extra": {},
        }
        for n in range(8)
    ]
    upsert(engine, trade_tick, rows)
    with engine.begin() as conn:
        conn.execute(
            execution_log.insert(),
            [{"logged_at": old, "level": "INFO", "message": "old line", "worker_id": "x"}],
        )
    return old


def _count(url: str, table) -> int:
    with ensure_schema(url).connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def test_cli_retention_then_restore(sqlite_url, tmp_path, capsys):
    old = _seed(sqlite_url)
    archive = str(tmp_path / "archive")
    args = ["--database-url", sqlite_url, "--archive-url", archive]
    once = ["retention", "--table", "trade_tick", "--older-than-days", "30", "--nice", "0"]
    assert main([*once, *args]) == 0
    assert "5 rows older than" in capsys.readouterr().out
    assert _count(sqlite_url, trade_tick) == 3
    day = old.date().isoformat()
    restore = ["archive", "restore", "--table", "trade_tick", "--day", day, *args]
    assert main(restore) == 0
    assert "5 restored" in capsys.readouterr().out
    assert _count(sqlite_url, trade_tick) == 8
    assert main(restore) == 0
    assert "0 restored, 0 updated, 5 already there" in capsys.readouterr().out
    missing = ["archive", "restore", "--table", "trade_tick", "--day", "2001-01-01", *args]
    assert main(missing) == 1
    assert "no archive of trade_tick for 2001-01-01" in capsys.readouterr().err


def test_scheduled_job_applies_every_policy(sqlite_url, tmp_path, monkeypatch):
    _seed(sqlite_url)
    monkeypatch.setenv("INGEST_ARCHIVE_URL", str(tmp_path / "archive"))
    monkeypatch.setenv("INGEST_RETENTION_POLICIES", "trade_tick=30,execution_log=35")
    monkeypatch.setenv("INGEST_RETENTION_NICE", "0")  # in process: leave pytest's niceness be
    result = retention_job.execute_in_process(
        resources={"database": DatabaseResource(url=sqlite_url)}
    )
    assert result.success
    assert _count(sqlite_url, trade_tick) == 3
    assert _count(sqlite_url, execution_log) == 0
    assert list((tmp_path / "archive" / "execution_log").glob("day=*/part-*.parquet"))


def test_job_and_schedule_are_defined():
    defs = build_definitions()
    assert defs.resolve_job_def("retention").name == "retention"
    assert defs.resolve_schedule_def(RETENTION_SCHEDULE).cron_schedule == "30 2 * * *"
