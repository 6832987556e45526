"""Alerts by e-mail: SMTP with STARTTLS, routed exactly like webhooks.

Routing: the worker's `alert_webhook` (same chain: worker row, global row,
`INGEST_<WORKER>__ALERT_WEBHOOK`, `INGEST_ALERT_WEBHOOK`) may be `mailto:ops@example.com,...`;
the alert then goes by e-mail, with the same incidents, recovery messages and no-repeat rule
(`control/alerts.AlertBook`). The server is process-wide:

| variable | meaning |
|---|---|
| `INGEST_ALERT_SMTP_URL` | `smtp://user@host:587` (STARTTLS, required) or `smtps://user@host:465` (TLS from the start); no password in it |
| `INGEST_ALERT_SMTP_PASSWORD` | an `env:NAME` reference to the variable holding the password (a literal is refused) |
| `INGEST_ALERT_SMTP_FROM` | the sender (default: the URL's user, else `ingest-alerts@<host>`) |
| `INGEST_ALERT_SMTP_CA_FILE` | a CA bundle to trust (a private CA or a self-signed server), else the system's |

Credentials are only ever sent inside TLS: a server that does not offer STARTTLS is refused
before anything else is said. The password and the recipients never appear in logs or errors.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
import urllib.parse
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ingestion_pipelines.core.redaction import redact, register_secret

MAILTO = "mailto:"


class EmailConfigError(RuntimeError):
    """The SMTP settings are missing or unsafe (message safe to show)."""


def is_email_route(route: str | None) -> bool:
    """Whether an `alert_webhook` value asks for e-mail (`mailto:...`)."""
    return bool(route) and route.strip().lower().startswith(MAILTO)


def recipients(route: str) -> list[str]:
    """The addresses of a `mailto:a@x,b@y` route."""
    text = urllib.parse.unquote(route.strip()[len(MAILTO) :].split("?", 1)[0])
    found = [a.strip() for a in text.split(",") if a.strip()]
    if not found or any("@" not in a or any(c in a for c in "\r\n<> ") for a in found):
        raise EmailConfigError("alert_webhook mailto: needs addresses like ops@example.com")
    return found


def describe_route(route: str) -> str:
    """What may be shown of an e-mail route: the number of recipients and their domains."""
    try:
        domains = sorted({a.rsplit("@", 1)[1] for a in recipients(route)})
    except EmailConfigError:
        return "e-mail (invalid mailto: route)"
    return f"e-mail to {len(recipients(route))} recipient(s) at {', '.join(domains)}"


def _password() -> str | None:
    value = (os.environ.get("INGEST_ALERT_SMTP_PASSWORD") or "").strip()
    if not value:
        return None
    if not value.startswith("env:"):
        raise EmailConfigError(
            "INGEST_ALERT_SMTP_PASSWORD must be a reference env:NAME to the variable holding "
            "the password, not the password itself"
        )
    name = value[len("env:") :]
    secret = os.environ.get(name)
    if not secret:
        raise EmailConfigError(f"INGEST_ALERT_SMTP_PASSWORD: variable {name} is not set")
    register_secret(secret)
    return secret


def smtp_settings() -> dict:
    """The SMTP server from the environment (read when an e-mail is sent)."""
    url = (os.environ.get("INGEST_ALERT_SMTP_URL") or "").strip()
    if not url:
        raise EmailConfigError("an alert goes by e-mail but INGEST_ALERT_SMTP_URL is not set")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise EmailConfigError("INGEST_ALERT_SMTP_URL must be smtp://[user@]host[:port]")
    if parts.password:
        raise EmailConfigError(
            "INGEST_ALERT_SMTP_URL must not hold a password: give INGEST_ALERT_SMTP_PASSWORD=env:NAME"
        )
    user = urllib.parse.unquote(parts.username) if parts.username else None
    sender = os.environ.get("INGEST_ALERT_SMTP_FROM") or (
        user if user and "@" in user else f"ingest-alerts@{socket.getfqdn()}"
    )
    return {
        "implicit_tls": parts.scheme == "smtps",
        "host": parts.hostname,
        "port": parts.port or (465 if parts.scheme == "smtps" else 587),
        "user": user,
        "password": _password(),
        "sender": sender,
        "ca_file": os.environ.get("INGEST_ALERT_SMTP_CA_FILE") or None,
    }


def build_message(alert, payload: dict, sender: str, to: list[str]) -> EmailMessage:
    """The e-mail of one alert: the subject says firing/resolved and who, the body the fields
    of the webhook's generic payload."""
    message = EmailMessage()
    message["Subject"] = f"[ingest] {alert.summary()}"
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain="ingestion-pipelines")
    message["X-Ingest-Alert-Key"] = alert.key
    message["X-Ingest-Alert-Status"] = alert.status
    lines = [alert.summary(), ""]
    lines += [f"{k}: {v}" for k, v in payload.items() if v not in (None, "")]
    message.set_content(redact("\n".join(lines)) + "\n")
    return message


def _login(client: smtplib.SMTP, user: str, password: str) -> None:
    """AUTH PLAIN when offered (inside TLS), else whatever `smtplib` picks: one attempt, so a
    wrong password is one clear refusal."""
    offered = (client.esmtp_features.get("auth") or "").upper().split()
    if "PLAIN" not in offered:
        client.login(user, password)
        return
    client.user, client.password = user, password
    client.auth("PLAIN", client.auth_plain)


def send_email(route: str, alert, payload: dict, *, timeout_s: float = 20) -> None:
    """Send `alert` (its generic `payload`) to the `mailto:` route; raises `RuntimeError` (a
    message safe to show) on failure."""
    register_secret(route)
    to = recipients(route)
    settings = smtp_settings()
    context = ssl.create_default_context(cafile=settings["ca_file"])
    where = f"SMTP server {settings['host']}:{settings['port']}"
    message = build_message(alert, payload, settings["sender"], to)
    try:
        if settings["implicit_tls"]:
            client = smtplib.SMTP_SSL(
                settings["host"], settings["port"], timeout=timeout_s, context=context
            )
        else:
            client = smtplib.SMTP(settings["host"], settings["port"], timeout=timeout_s)
        with client:
            client.ehlo()
            if not settings["implicit_tls"]:
                if not client.has_extn("starttls"):
                    raise EmailConfigError(f"{where} does not offer STARTTLS: nothing sent")
                client.starttls(context=context)
                client.ehlo()
            if settings["user"] and settings["password"]:
                _login(client, settings["user"], settings["password"])
            client.send_message(message, from_addr=settings["sender"], to_addrs=to)
    except EmailConfigError:
        raise
    except smtplib.SMTPResponseException as exc:
        raise RuntimeError(redact(f"{where} refused the alert: {exc.smtp_code}")) from None
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise RuntimeError(redact(f"{where} unreachable: {type(exc).__name__}: {exc}")) from None
