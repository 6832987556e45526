"""E-mail alerts against a local SMTP server (aiosmtpd) that requires STARTTLS with a self-signed
certificate and AUTH inside TLS: the message arrives, once per incident and once on recovery,
routed like webhooks; credentials only as `env:` references and never shown."""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
from email import policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ingestion_pipelines.control.alert_email import EmailConfigError, describe_route
from ingestion_pipelines.control.alerts import AlertBook, Signal, deliver_alert, webhook_for
from ingestion_pipelines_tests.testbed.base import free_port

PASSWORD = "smtp-Pa55-7c1d"
USER = "alerts@example.com"
ROUTE = "mailto:ops@example.com,oncall@example.org"


def _self_signed(folder) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


class Inbox:
    """aiosmtpd handler keeping every accepted message."""

    def __init__(self):
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.logins: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        parsed = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == USER.encode()
            and auth_data.password == PASSWORD.encode()
        )
        self.logins.append(auth_data.login if isinstance(auth_data, LoginPassword) else b"?")
        return AuthResult(success=ok, handled=False)  # False: the server answers 535


@pytest.fixture
def smtp(tmp_path, monkeypatch):
    import ssl

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        server_hostname="localhost",
        tls_context=context,
        require_starttls=True,
        authenticator=inbox.authenticate,
        auth_require_tls=True,
    )
    controller.start()
    monkeypatch.setenv(
        "INGEST_ALERT_SMTP_URL", f"smtp://{USER.replace('@', '%40')}@localhost:{port}"
    )
    monkeypatch.setenv("INGEST_ALERT_SMTP_PASSWORD", "env:ALERT_SMTP_SECRET")
    monkeypatch.setenv("ALERT_SMTP_SECRET", PASSWORD)
    monkeypatch.setenv("INGEST_ALERT_SMTP_CA_FILE", cert)
    yield inbox
    controller.stop()


def _signal(failing: bool, at: float) -> Signal:
    return Signal(
        "run:fear_greed_job:fear_greed",
        "run_failure",
        "fear_greed",
        failing,
        "fear_greed_job run failed" if failing else "succeeded",
        "HTTP 404 from https://api.alternative.me/fng/" if failing else "run ok",
        f"run-{at}",
        at,
    )


def test_one_mail_per_incident_and_one_on_recovery(smtp):
    book = AlertBook()
    book.observe([_signal(True, 1.0), _signal(True, 2.0), _signal(True, 3.0)])
    sent = book.deliver(lambda a: deliver_alert(ROUTE, a, dagster_url="http://127.0.0.1:3000"))
    assert len(sent) == 1 and len(smtp.messages) == 1
    book.observe([_signal(True, 4.0)])  # still failing: no repeat
    assert book.deliver(lambda a: deliver_alert(ROUTE, a)) == []
    book.observe([_signal(False, 5.0)])
    book.deliver(lambda a: deliver_alert(ROUTE, a))
    assert len(smtp.messages) == 2
    (to, firing), (_, resolved) = smtp.messages
    assert to == ["ops@example.com", "oncall@example.org"]
    assert firing["Subject"] == "[ingest] FIRING fear_greed: fear_greed_job run failed"
    assert firing["X-Ingest-Alert-Status"] == "firing"
    body = firing.get_content()
    assert "detail: HTTP 404 from https://api.alternative.me/fng/" in body
    assert "run_url: http://127.0.0.1:3000/runs/run-1.0" in body
    assert resolved["Subject"].startswith("[ingest] RESOLVED fear_greed")
    assert "after 4 occurrence(s)" in resolved["Subject"]
    assert smtp.logins == [USER.encode(), USER.encode()]


def test_wrong_password_is_retried_and_never_shown(smtp, monkeypatch):
    monkeypatch.setenv("ALERT_SMTP_SECRET", "wrong-" + PASSWORD)
    book = AlertBook()
    book.observe([_signal(True, 1.0)])
    errors = []

    class Log:
        def warning(self, text):
            errors.append(text)

        error = warning

    assert book.deliver(lambda a: deliver_alert(ROUTE, a), Log()) == []
    assert len(book.outbox) == 1 and smtp.messages == []
    assert "refused the alert: 535" in errors[0]
    assert PASSWORD not in errors[0] and "ops@example.com" not in errors[0]


def test_server_without_starttls_gets_no_credentials(monkeypatch):
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, auth_require_tls=False)
    controller.start()
    try:
        monkeypatch.setenv("INGEST_ALERT_SMTP_URL", f"smtp://user@127.0.0.1:{port}")
        monkeypatch.setenv("INGEST_ALERT_SMTP_PASSWORD", "env:ALERT_SMTP_SECRET")
        monkeypatch.setenv("ALERT_SMTP_SECRET", PASSWORD)
        [alert] = AlertBook().observe([_signal(True, 1.0)])
        with pytest.raises(EmailConfigError, match="does not offer STARTTLS"):
            deliver_alert(ROUTE, alert)
        assert inbox.messages == [] and inbox.logins == []
    finally:
        controller.stop()


def test_password_must_be_an_env_reference(monkeypatch):
    monkeypatch.setenv("INGEST_ALERT_SMTP_URL", "smtp://user@127.0.0.1:25")
    monkeypatch.setenv("INGEST_ALERT_SMTP_PASSWORD", PASSWORD)
    [alert] = AlertBook().observe([_signal(True, 1.0)])
    with pytest.raises(EmailConfigError) as info:
        deliver_alert(ROUTE, alert)
    assert "env:NAME" in str(info.value) and PASSWORD not in str(info.value)
    monkeypatch.setenv("INGEST_ALERT_SMTP_URL", f"smtp://user:{PASSWORD}@127.0.0.1:25")
    with pytest.raises(EmailConfigError) as info:
        deliver_alert(ROUTE, alert)
    assert PASSWORD not in str(info.value)


def test_mailto_routes_like_webhooks(sqlite_url, monkeypatch):
    from ingestion_pipelines.config.chain import ConfigChain

    chain = ConfigChain(sqlite_url)
    chain.set(None, "alert_webhook", "https://global.example/hook")
    chain.set("fear_greed", "alert_webhook", ROUTE)
    assert webhook_for("fear_greed", chain) == ROUTE
    assert webhook_for("coingecko_markets", chain) == "https://global.example/hook"
    assert describe_route(ROUTE) == "e-mail to 2 recipient(s) at example.com, example.org"
