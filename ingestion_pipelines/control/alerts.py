"""Alerts: run failures, failed asset checks and stale feeds, posted to a webhook.

The alert sensors (`control/defs.py`) turn what they see into `Signal`s (failing or healthy, per
*incident key*, e.g. `run:fear_greed_job:fear_greed`). `AlertBook` is the state kept in the
sensor's cursor: an incident opens on its first failing signal (one alert), further failing
signals for the same key only count occurrences (no repeated alert), and the first healthy
signal closes it (one recovery message). Deliveries that fail are retried on later ticks.

Routing: the webhook (or, written `mailto:...`, the e-mail addresses: `control/alert_email.py`)
is the worker's `alert_webhook` setting (config chain: worker row, global
row, `INGEST_<WORKER>__ALERT_WEBHOOK`, `INGEST_ALERT_WEBHOOK`). Payload: generic JSON, or a
Slack-compatible `{"text": ...}` when the URL's host is `hooks.slack.com` or the URL is written
`slack+https://...`. Webhook URLs are secrets: they are registered with the redactor and only
their scheme and host are ever logged.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from ingestion_pipelines.config.chain import ConfigError, env_reference
from ingestion_pipelines.control import alert_email
from ingestion_pipelines.core.redaction import redact, register_secret
from ingestion_pipelines.core.url_policy import CRAWL_SCHEMES, UnsafeUrlError, check_url

SOURCE = "ingestion_pipelines"
MAX_DETAIL = 600
MAX_ATTEMPTS = 20  # a delivery failing this many ticks in a row is given up (and logged)


@dataclass(frozen=True)
class Signal:
    """What a sensor observed about one incident key at one moment."""

    key: str
    kind: str  # run_failure | check_failed | feed_stale
    worker_id: str | None
    failing: bool
    title: str
    detail: str = ""
    run_id: str | None = None
    at: float = 0.0  # epoch seconds


@dataclass
class Alert:
    """One message to deliver: an incident firing, or resolved."""

    key: str
    kind: str
    worker_id: str | None
    status: str  # firing | resolved
    title: str
    detail: str
    run_id: str | None
    since: float
    resolved_at: float | None = None
    occurrences: int = 1
    attempts: int = 0

    def summary(self) -> str:
        who = self.worker_id or "global"
        if self.status == "resolved":
            return f"RESOLVED {who}: {self.title} (after {self.occurrences} occurrence(s))"
        return f"FIRING {who}: {self.title}"


@dataclass
class AlertBook:
    """Open incidents and undelivered messages; serialised into the sensor cursor."""

    open: dict[str, dict[str, Any]] = field(default_factory=dict)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # the sensor's own position

    @classmethod
    def load(cls, cursor: str | None) -> AlertBook:
        try:
            raw = json.loads(cursor) if cursor else {}
        except ValueError:
            raw = {}
        if not isinstance(raw, dict):
            raw = {}
        return cls(
            open=dict(raw.get("open") or {}),
            outbox=list(raw.get("outbox") or []),
            extra=dict(raw.get("extra") or {}),
        )

    def dump(self) -> str:
        return json.dumps(
            {"open": self.open, "outbox": self.outbox, "extra": self.extra}, sort_keys=True
        )

    def observe(self, signals: Iterable[Signal]) -> list[Alert]:
        """Apply signals in order; the alerts they newly cause (also queued in the outbox)."""
        new: list[Alert] = []
        for signal in signals:
            incident = self.open.get(signal.key)
            if signal.failing:
                if incident is None:
                    incident = {
                        "kind": signal.kind,
                        "worker_id": signal.worker_id,
                        "title": signal.title,
                        "detail": _clip(signal.detail),
                        "run_id": signal.run_id,
                        "since": signal.at,
                        "last": signal.at,
                        "occurrences": 1,
                    }
                    self.open[signal.key] = incident
                    new.append(self._alert(signal.key, incident, "firing"))
                else:
                    incident["occurrences"] = int(incident.get("occurrences", 1)) + 1
                    incident["last"] = signal.at
            elif incident is not None:
                del self.open[signal.key]
                alert = self._alert(signal.key, incident, "resolved")
                alert.resolved_at = signal.at
                alert.detail = _clip(signal.detail) or alert.detail
                new.append(alert)
        self.outbox.extend(asdict(a) for a in new)
        return new

    @staticmethod
    def _alert(key: str, incident: Mapping[str, Any], status: str) -> Alert:
        return Alert(
            key=key,
            kind=incident["kind"],
            worker_id=incident.get("worker_id"),
            status=status,
            title=incident["title"],
            detail=incident.get("detail", ""),
            run_id=incident.get("run_id"),
            since=float(incident.get("since") or 0),
            occurrences=int(incident.get("occurrences", 1)),
        )

    def pending(self) -> list[Alert]:
        return [Alert(**item) for item in self.outbox]

    def deliver(self, send, log=None) -> list[Alert]:
        """Try every queued alert with `send(alert) -> None` (raises on failure); those sent."""
        sent: list[Alert] = []
        keep: list[dict[str, Any]] = []
        for alert in self.pending():
            try:
                send(alert)
            except Exception as exc:  # noqa: BLE001 - retried on the next tick
                alert.attempts += 1
                message = redact(f"alert {alert.summary()} not delivered: {exc}")
                if alert.attempts >= MAX_ATTEMPTS:
                    if log is not None:
                        log.error(f"{message}; giving up after {alert.attempts} attempts")
                    continue
                if log is not None:
                    log.warning(f"{message} (attempt {alert.attempts}, retried next tick)")
                keep.append(asdict(alert))
            else:
                sent.append(alert)
        self.outbox = keep
        return sent


def _clip(text: str | None) -> str:
    text = redact(text or "").strip()
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


# ---- payloads -------------------------------------------------------------------------------


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None


def run_url(dagster_url: str | None, run_id: str | None) -> str | None:
    if not dagster_url or not run_id:
        return None
    parts = urllib.parse.urlsplit(dagster_url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return f"{base}/runs/{run_id}"


def generic_payload(alert: Alert, dagster_url: str | None = None) -> dict[str, Any]:
    return {
        "source": SOURCE,
        "status": alert.status,
        "kind": alert.kind,
        "worker_id": alert.worker_id,
        "title": alert.title,
        "detail": alert.detail,
        "run_id": alert.run_id,
        "run_url": run_url(dagster_url, alert.run_id),
        "since": _iso(alert.since),
        "resolved_at": _iso(alert.resolved_at),
        "occurrences": alert.occurrences,
        "key": alert.key,
    }


def slack_payload(alert: Alert, dagster_url: str | None = None) -> dict[str, Any]:
    who = alert.worker_id or "global"
    if alert.status == "resolved":
        head = f":large_green_circle: *{who}* recovered: {alert.title}"
        tail = f"after {alert.occurrences} occurrence(s) since {_iso(alert.since)}"
    else:
        head = f":red_circle: *{who}*: {alert.title}"
        tail = alert.detail
    lines = [head]
    if tail:
        lines.append(tail)
    link = run_url(dagster_url, alert.run_id)
    if link:
        lines.append(f"<{link}|run {alert.run_id[:8]}>")
    return {"text": "\n".join(lines)}


def webhook_target(url: str) -> tuple[str, str]:
    """(format, URL to POST to): `slack` for hooks.slack.com or `slack+https://`, else
    `generic`."""
    url = url.strip()
    if url.startswith("slack+"):
        return "slack", url[len("slack+") :]
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host == "hooks.slack.com" or host.endswith(".slack.com"):
        return "slack", url
    return "generic", url


def describe_webhook(url: str) -> str:
    """What may be shown of a webhook URL: its scheme and host only."""
    kind, target = webhook_target(url)
    parts = urllib.parse.urlsplit(target)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{kind} webhook {parts.scheme}://{host}{port}/…"


def post_alert(url: str, alert: Alert, *, dagster_url: str | None = None, timeout_s: float = 10):
    """POST `alert` to webhook `url`; raises `RuntimeError` (message without the URL) on failure."""
    register_secret(url)
    kind, target = webhook_target(url)
    register_secret(target)
    try:
        check_url(target, CRAWL_SCHEMES, "alert_webhook")
    except UnsafeUrlError as exc:
        raise RuntimeError(str(exc)) from None
    payload = (
        slack_payload(alert, dagster_url)
        if kind == "slack"
        else generic_payload(alert, dagster_url)
    )
    request = urllib.request.Request(
        target,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": f"{SOURCE}-alerts"},
        method="POST",
    )
    where = describe_webhook(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{where} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RuntimeError(redact(f"{where} unreachable: {reason}")) from None


def deliver_alert(route: str, alert: Alert, *, dagster_url: str | None = None) -> None:
    """Deliver `alert` to its route: e-mail for `mailto:...` (control/alert_email.py), else the
    webhook (generic JSON or Slack); raises `RuntimeError` with a safe message on failure."""
    if alert_email.is_email_route(route):
        alert_email.send_email(route, alert, generic_payload(alert, dagster_url))
    else:
        post_alert(route, alert, dagster_url=dagster_url)


def describe_route(route: str) -> str:
    """What may be shown of a route (never the secret parts)."""
    if alert_email.is_email_route(route):
        return alert_email.describe_route(route)
    return describe_webhook(route)


# ---- routing --------------------------------------------------------------------------------


def webhook_for(worker_id: str | None, chain) -> str | None:
    """The `alert_webhook` for `worker_id` (None: the global row, then INGEST_ALERT_WEBHOOK)."""
    if worker_id:
        try:
            value = chain.resolve(worker_id).settings.alert_webhook
        except KeyError:
            value = None  # not a worker of the catalogue: fall back to the global setting
        except ConfigError as exc:  # a bad setting of the worker must not silence its alerts
            logger.warning("alert_webhook of {}: {}; using the global one", worker_id, exc)
        else:
            if value:
                register_secret(value)
            return value or None
    for row in chain.rows(None) if hasattr(chain, "rows") else []:
        if row.get("worker_id") is None and row.get("key") == "alert_webhook" and row.get("value"):
            value = row["value"]
            name = env_reference(value)
            if name is not None:  # a secret reference, resolved here where it is used
                value = os.environ.get(name)
                if not value:
                    continue
            register_secret(str(value))
            return str(value)
    value = os.environ.get("INGEST_ALERT_WEBHOOK") or None
    if value:
        register_secret(value)
    return value
