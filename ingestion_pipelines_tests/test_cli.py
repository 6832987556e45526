"""The installed `ingest` console script, run as its own process."""

import json
import subprocess
import sys
from pathlib import Path

INGEST = Path(sys.executable).parent / "ingest"


def run(*args, env=None):
    return subprocess.run([str(INGEST), *args], capture_output=True, text=True, timeout=60, env=env)


def test_db_upgrade_and_config_get_need_no_webserver(sqlite_url, monkeypatch):
    import os

    env = {
        **os.environ,
        "INGEST_DATABASE_URL": sqlite_url,
        "INGEST_FEAR_GREED__BASE_URL": "http://mirror:8080/",
    }
    assert run("db", "upgrade", env=env).returncode == 0
    result = run("config", "get", "fear_greed", "base_url", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "worker_id": "fear_greed",
        "key": "base_url",
        "value": '"http://mirror:8080"',
        "layer": "env INGEST_FEAR_GREED__BASE_URL",
    }


def test_control_commands_fail_clearly_without_a_webserver(sqlite_url, monkeypatch):
    import os

    env = {
        **os.environ,
        "INGEST_DATABASE_URL": sqlite_url,
        "INGEST_DAGSTER_URL": "http://ops:s3cret@127.0.0.1:1",
    }
    result = run("status", env=env)
    assert result.returncode == 1
    assert "127.0.0.1:1" in result.stderr + result.stdout
    assert "s3cret" not in result.stderr + result.stdout
    assert run("trigger", "no_such_worker", env=env).returncode == 2
