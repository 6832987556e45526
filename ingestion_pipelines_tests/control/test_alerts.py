"""Alert state (dedup, recovery, retries of failed deliveries), payloads and webhook delivery."""

from __future__ import annotations

import pytest

from ingestion_pipelines.control.alerts import (
    AlertBook,
    Signal,
    describe_webhook,
    generic_payload,
    post_alert,
    slack_payload,
    webhook_for,
    webhook_target,
)
from ingestion_pipelines.core.redaction import redact
from ingestion_pipelines_tests.control.helpers import WebhookServer

SECRET = "T0KEN-b5e8c1"


def fail(key="run:fear_greed_job:fear_greed", at=1.0, detail="HTTP 404"):
    return Signal(
        key, "run_failure", "fear_greed", True, "fear_greed_job run failed", detail, f"run-{at}", at
    )


def ok(key="run:fear_greed_job:fear_greed", at=2.0):
    return Signal(key, "run_failure", "fear_greed", False, "succeeded", "run ok", "r", at)


def test_one_alert_per_incident_and_one_recovery() -> None:
    book = AlertBook()
    assert [a.status for a in book.observe([fail(at=1), fail(at=2), fail(at=3)])] == ["firing"]
    assert book.open["run:fear_greed_job:fear_greed"]["occurrences"] == 3
    assert book.observe([fail(at=4)]) == []
    [resolved] = book.observe([ok(at=5)])
    assert resolved.status == "resolved" and resolved.occurrences == 4
    assert resolved.since == 1 and resolved.resolved_at == 5
    assert book.observe([ok(at=6)]) == []  # healthy and nothing open: silence
    assert [a.status for a in book.observe([fail(at=7)])] == ["firing"]  # a new incident


def test_incidents_are_independent_per_key() -> None:
    book = AlertBook()
    alerts = book.observe([fail("run:a_job:a"), fail("run:b_job:b"), fail("run:a_job:a")])
    assert [a.key for a in alerts] == ["run:a_job:a", "run:b_job:b"]
    assert [a.key for a in book.observe([ok("run:b_job:b")])] == ["run:b_job:b"]
    assert set(book.open) == {"run:a_job:a"}


def test_state_survives_the_cursor_round_trip() -> None:
    book = AlertBook()
    book.observe([fail()])
    book.extra["updated_after"] = 12.5
    again = AlertBook.load(book.dump())
    assert again.open == book.open and again.extra == {"updated_after": 12.5}
    assert len(again.pending()) == 1
    assert again.observe([fail(at=9)]) == []
    assert AlertBook.load("not json").open == {}
    assert AlertBook.load(None).outbox == []


def test_failed_deliveries_are_retried_then_dropped() -> None:
    book = AlertBook()
    book.observe([fail()])
    calls = []

    def broken(alert):
        calls.append(alert)
        raise RuntimeError(f"down (https://hooks.example/{SECRET})")

    class Log:
        lines: list[str] = []

        def warning(self, text):
            self.lines.append(text)

        error = warning

    from ingestion_pipelines.core.redaction import register_secret

    register_secret(SECRET)
    log = Log()
    assert book.deliver(broken, log) == []
    assert len(book.outbox) == 1 and book.outbox[0]["attempts"] == 1
    assert all(SECRET not in line for line in log.lines)
    sent = book.deliver(lambda alert: None, log)
    assert [a.status for a in sent] == ["firing"] and book.outbox == []
    book.observe([ok()])
    for _ in range(25):
        book.deliver(broken, log)
    assert book.outbox == []  # given up after MAX_ATTEMPTS
    assert "giving up" in log.lines[-1]


def test_payloads() -> None:
    book = AlertBook()
    [alert] = book.observe([fail(detail="HTTP 404 from http://127.0.0.1/fng/")])
    generic = generic_payload(alert, "http://admin:pw@dagster.internal:3000")
    assert generic["status"] == "firing" and generic["worker_id"] == "fear_greed"
    assert generic["run_url"] == "http://dagster.internal:3000/runs/run-1.0"
    assert generic["since"].startswith("1970-01-01T00:00:01")
    slack = slack_payload(alert, "http://dagster.internal:3000")
    assert set(slack) == {"text"}
    assert slack["text"].startswith(":red_circle: *fear_greed*: fear_greed_job run failed")
    [resolved] = book.observe([ok()])
    assert "recovered" in slack_payload(resolved)["text"]


def test_webhook_targets_and_what_is_shown() -> None:
    assert webhook_target("https://hooks.slack.com/services/T/B/x") == (
        "slack",
        "https://hooks.slack.com/services/T/B/x",
    )
    assert webhook_target("slack+https://chat.example/hook") == (
        "slack",
        "https://chat.example/hook",
    )
    assert webhook_target("https://alerts.example/in?key=1")[0] == "generic"
    shown = describe_webhook(f"https://hooks.slack.com/services/T000/B000/{SECRET}")
    assert shown == "slack webhook https://hooks.slack.com/…"


@pytest.mark.parametrize("form", ["generic", "slack"])
def test_post_alert_to_a_local_webhook(form: str) -> None:
    hooks = WebhookServer()
    try:
        url = f"{hooks.url}/in/{SECRET}"
        if form == "slack":
            url = "slack+" + url
        [alert] = AlertBook().observe([fail()])
        post_alert(url, alert, dagster_url="http://127.0.0.1:3000")
        [body] = hooks.on(f"/in/{SECRET}")
        if form == "slack":
            assert set(body) == {"text"}
        else:
            assert body["kind"] == "run_failure" and body["detail"] == "HTTP 404"
        # The URL became a known secret: any text containing it is masked.
        assert SECRET not in redact(f"posting to {url}")
        hooks.status = 500
        with pytest.raises(RuntimeError) as info:
            post_alert(url, alert)
        assert "HTTP 500" in str(info.value) and SECRET not in str(info.value)
    finally:
        hooks.close()


def test_unreachable_webhook_error_has_no_secret() -> None:
    from ingestion_pipelines_tests.testbed.base import free_port

    [alert] = AlertBook().observe([fail()])
    with pytest.raises(RuntimeError) as info:
        post_alert(f"http://127.0.0.1:{free_port()}/hook/{SECRET}", alert, timeout_s=2)
    assert "unreachable" in str(info.value) and SECRET not in str(info.value)


def test_webhook_routing(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingestion_pipelines.config.chain import ConfigChain

    chain = ConfigChain(sqlite_url)
    assert webhook_for("fear_greed", chain) is None
    monkeypatch.setenv("INGEST_ALERT_WEBHOOK", "http://env.example/all")
    assert webhook_for("fear_greed", chain) == "http://env.example/all"
    assert webhook_for(None, chain) == "http://env.example/all"
    chain.set(None, "alert_webhook", "http://global.example/hook")
    assert webhook_for("fear_greed", chain) == "http://global.example/hook"
    assert webhook_for(None, chain) == "http://global.example/hook"
    chain.set("fear_greed", "alert_webhook", "http://fg.example/hook")
    assert webhook_for("fear_greed", chain) == "http://fg.example/hook"
    assert webhook_for("coingecko_markets", chain) == "http://global.example/hook"
    assert webhook_for("not_a_worker", chain) == "http://global.example/hook"
