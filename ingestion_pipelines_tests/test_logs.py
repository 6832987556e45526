import subprocess
import sys
import time

import dagster as dg
import pytest
from loguru import logger
from sqlalchemy import func, select

from ingestion_pipelines.core.redaction import register_secret
from ingestion_pipelines.storage import logs
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema
from ingestion_pipelines.storage.tables import execution_log


@pytest.fixture(autouse=True)
def _reset_logging():
    yield
    logs.shutdown_logging(timeout_s=2)
    dispose_all()


def rows(url, **where):
    query = select(execution_log)
    for column, value in where.items():
        query = query.where(execution_log.c[column] == value)
    with ensure_schema(url).connect() as conn:
        return [dict(r) for r in conn.execute(query.order_by(execution_log.c.id)).mappings()]


def count(url, run_id) -> int:
    with ensure_schema(url).connect() as conn:
        return conn.execute(
            select(func.count()).select_from(execution_log).where(execution_log.c.run_id == run_id)
        ).scalar_one()


def test_every_line_reaches_execution_log_across_a_database_restart(mariadb_server, mariadb_url):
    ensure_schema(mariadb_url)
    writer = logs.setup_logging("test", database_url=mariadb_url)
    log = logger.bind(worker_id="fund_nav", run_id="restart-test")
    for i in range(50_000):
        log.info("before outage {}", i)
    mariadb_server.stop()
    try:
        started = time.perf_counter()
        for i in range(50_000):
            log.info("during outage {}", i)
        elapsed = time.perf_counter() - started
        # The caller never waits on the database: a wait would cost milliseconds per call.
        assert elapsed / 50_000 < 0.001, (
            f"{elapsed / 50_000 * 1e6:.0f} us per call during the outage"
        )
        deadline = time.monotonic() + 30
        while writer.failures == 0 and time.monotonic() < deadline:  # a write really failed
            time.sleep(0.05)
    finally:
        mariadb_server.start()
    assert writer.flush(timeout_s=60)
    assert writer.dropped == 0
    assert count(mariadb_url, "restart-test") == 100_000
    assert writer.failures > 0  # the outage was really seen


def test_a_full_queue_drops_counts_and_says_so_then_spills_at_exit(sqlite_url, capfd):
    down = "mysql+pymysql://ingest:s3cretpw@127.0.0.1:1/nowhere"
    writer = logs.setup_logging("test", database_url=down, capacity=100)
    log = logger.bind(worker_id="w", run_id="full")
    started = time.perf_counter()
    for i in range(1000):
        log.info("line {}", i)
    assert time.perf_counter() - started < 1.0
    assert writer.dropped == 900
    logs.shutdown_logging(timeout_s=0.5)
    spill = writer.spill_path.read_text().splitlines()
    assert len(spill) == 101  # the 100 queued lines and the warning that 900 were dropped
    assert "900 log lines dropped" in spill[-1]
    assert "s3cretpw" not in capfd.readouterr().err

    # The next writer that starts replays the spill into the database.
    writer = logs.setup_logging("test", database_url=sqlite_url)
    assert writer.flush(timeout_s=10)
    stored = rows(sqlite_url)
    assert len([r for r in stored if r["run_id"] == "full"]) == 100
    assert any("900 log lines dropped" in r["message"] for r in stored)
    assert not writer.spill_path.exists()


def test_a_clean_exit_flushes_everything(sqlite_url, isolated_env):
    ensure_schema(sqlite_url)
    code = (
        "from loguru import logger\n"
        "from ingestion_pipelines.storage.logs import setup_logging\n"
        f"setup_logging('child', database_url={sqlite_url!r})\n"
        "for i in range(20000): logger.bind(run_id='child').info('line {}', i)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, capture_output=True)
    assert count(sqlite_url, "child") == 20_000


def test_secrets_never_reach_a_sink(sqlite_url, capfd):
    writer = logs.setup_logging("test", database_url=sqlite_url)
    register_secret("proxy-pass-9876")
    log = logger.bind(worker_id="cafef_news", run_id="secrets")
    log.info("connecting to mysql+pymysql://ingest:db-pass-1234@db:3306/ingest")
    log.warning("GET https://api.example.com/x?api_key=key-5678&page=2 failed")
    log.info("headers: Authorization: Bearer tok-abcdef")
    log.info("proxy password is proxy-pass-9876")
    try:
        raise RuntimeError("login failed for https://user:exc-pass-4321@host/")
    except RuntimeError:
        log.exception("crawl failed")
    assert writer.flush(timeout_s=10)
    logs._stderr.flush()
    stored = "\n".join(r["message"] for r in rows(sqlite_url, run_id="secrets"))
    printed = capfd.readouterr().err
    for secret in ("db-pass-1234", "key-5678", "tok-abcdef", "proxy-pass-9876", "exc-pass-4321"):
        assert secret not in stored
        assert secret not in printed
    assert "RuntimeError" in stored and "crawl failed" in printed
    assert "page=2" in stored  # redaction keeps what is not secret


def test_run_logging_copies_lines_to_the_dagster_run(sqlite_url, monkeypatch):
    monkeypatch.setenv("INGEST_DATABASE_URL", sqlite_url)

    @dg.asset
    def chatty(context: dg.AssetExecutionContext):
        with logs.run_logging(context, "chatty") as log:
            log.info("fetched {} rows", 42)

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([chatty], instance=instance)
    assert result.success
    messages = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any("fetched 42 rows" in m for m in messages)
    assert logs._writer.flush(timeout_s=10)
    stored = rows(sqlite_url, run_id=result.run_id)
    assert [r["message"] for r in stored] == ["fetched 42 rows"]
    assert stored[0]["worker_id"] == "chatty"
