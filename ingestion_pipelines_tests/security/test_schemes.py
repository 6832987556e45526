"""Item 1: only the schemes a worker needs, at validation and again in the clients; secrets
never follow a redirect to another origin."""

from __future__ import annotations

import socket
import threading

import pytest

from ingestion_pipelines.config.chain import ConfigChain, ConfigError
from ingestion_pipelines.core.url_policy import SafeRedirectHandler, UnsafeUrlError
from ingestion_pipelines.http_client.errors import HttpFetchError
from ingestion_pipelines.http_client.resource import HttpClientResource
from ingestion_pipelines_tests.fakes.http_origin import HttpOrigin, Reply

HOSTILE = [
    ("fear_greed", "base_url", "dict://127.0.0.1:6379/SET:pwned:1"),
    ("fmarket_funds", "base_url", "gopher://127.0.0.1:6379/_SET%20pwned%201"),
    ("fmarket_funds", "base_url", "file:///etc/passwd"),
    ("binance_trades", "base_url", "http://127.0.0.1:9001"),
    ("binance_trades", "rest_base_url", "ftp://127.0.0.1/x"),
    ("vnexpress_news", "feeds", ["file:/etc/passwd"]),
]


class Listener:
    """A TCP port that counts the connections made to it (a Redis or anything else)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


@pytest.mark.parametrize(("worker", "key", "value"), HOSTILE)
def test_config_set_refuses_schemes_a_worker_does_not_need(sqlite_url, worker, key, value):
    with pytest.raises(ConfigError, match="not allowed"):
        ConfigChain(sqlite_url).validate(worker, key, value)


def test_environment_and_run_config_refuse_hostile_schemes(sqlite_url, listener):
    url = f"dict://127.0.0.1:{listener.port}/SET:pwned:1"
    chain = ConfigChain(sqlite_url, environ={"INGEST_FEAR_GREED__BASE_URL": url})
    with pytest.raises(ConfigError, match=r"env INGEST_FEAR_GREED__BASE_URL.*dict://"):
        chain.resolve("fear_greed")
    with pytest.raises(ConfigError, match="run config.*gopher://"):
        ConfigChain(sqlite_url, environ={}).resolve(
            "fear_greed", {"base_url": f"gopher://127.0.0.1:{listener.port}/_x"}
        )
    with pytest.raises(ConfigError, match="proxy.*socks4"):
        ConfigChain(sqlite_url, environ={"INGEST_PROXY": "socks4://127.0.0.1:1080"}).resolve(
            "fear_greed"
        )
    with pytest.raises(ConfigError, match="alert_webhook.*gopher"):
        ConfigChain(
            sqlite_url, environ={"INGEST_ALERT_WEBHOOK": "slack+gopher://127.0.0.1/x"}
        ).resolve("fear_greed")
    # the schemes a worker does need still pass
    ok = ConfigChain(sqlite_url, environ={"INGEST_PROXY": "socks5h://127.0.0.1:1080"}).resolve(
        "binance_trades", {"rest_base_url": "http://127.0.0.1:1/"}
    )
    assert ok.settings.proxy == "socks5h://127.0.0.1:1080"
    assert listener.connections == 0


@pytest.mark.parametrize("scheme", ["dict", "gopher", "file", "ftp", "ldap", "smtp"])
def test_http_client_refuses_other_schemes_before_connecting(listener, scheme):
    url = f"{scheme}://127.0.0.1:{listener.port}/SET:pwned:1"
    client = HttpClientResource(redis_url="")
    with client.session("fear_greed", max_retries=0) as session, pytest.raises(HttpFetchError):
        session.get(url)
    assert listener.connections == 0


def test_http_client_refuses_a_redirect_to_another_scheme(listener):
    target = f"dict://127.0.0.1:{listener.port}/SET:pwned:1"
    with HttpOrigin() as origin, HttpClientResource(redis_url="").session("w") as session:
        origin.set("/hop", Reply(302, headers={"Location": target}))
        with pytest.raises(HttpFetchError, match="not allowed"):
            session.get(origin.url("/hop"))
    assert listener.connections == 0


def test_urllib_redirects_of_the_gap_fill_are_checked():
    import urllib.request

    with HttpOrigin() as origin:
        origin.set("/history", Reply(302, headers={"Location": "ftp://127.0.0.1/x"}))
        opener = urllib.request.build_opener(SafeRedirectHandler())
        with pytest.raises(UnsafeUrlError):
            opener.open(origin.url("/history"), timeout=5)


def test_cross_origin_redirect_drops_credentials_cookies_and_api_keys():
    secret_headers = {
        "x-cg-demo-api-key": "CG-S3CRET-KEY",
        "Authorization": "Bearer S3CRET-TOKEN",
        "Cookie": "session=S3CRET-COOKIE",
        "X-Custom-Token": "S3CRET-OTHER",
    }
    with HttpOrigin() as first, HttpOrigin() as second:
        second.set("/landing", Reply(200, body=b"[]"))
        first.set("/same", Reply(302, headers={"Location": "/coins"}))
        first.set("/coins", Reply(301, headers={"Location": second.url("/landing")}))
        with HttpClientResource(redis_url="").session("coingecko_markets") as session:
            result = session.get(first.url("/same"), headers=secret_headers)
        assert result.status == 200 and result.content == b"[]"
        # same origin: the key goes on (it is that API's own redirect)
        [same] = first.requests_for("/coins")
        assert same.headers["x-cg-demo-api-key"] == "CG-S3CRET-KEY"
        [landed] = second.requests_for("/landing")
        sent = " ".join(f"{k}: {v}" for k, v in landed.headers.items())
        assert "S3CRET" not in sent, sent
        assert "user-agent" in landed.headers


def test_the_sidecar_checks_again_before_connecting(listener):
    """A value that slipped past validation (built without it here) still never connects."""
    from ingestion_pipelines.feeds.binance.feed import BinanceTrades
    from ingestion_pipelines.feeds.ssi.feed import SsiIboard, SsiIboardSettings
    from ingestion_pipelines.sidecar.engine import FeedEngine
    from ingestion_pipelines.sidecar.gaps import GapFiller

    url = f"http://127.0.0.1:{listener.port}/realtime"
    settings = SsiIboardSettings.model_construct(base_url=url, timeout_s=2.0, proxy=None)
    engine = FeedEngine("ssi_iboard", SsiIboard(), settings, writer=None)
    with pytest.raises(UnsafeUrlError, match="only ws/wss"):
        engine._connect(url, settings)
    filler = GapFiller("binance_trades", BinanceTrades(), lambda: settings, lambda rows: True)
    with pytest.raises(UnsafeUrlError, match="only http/https"):
        filler._get(f"gopher://127.0.0.1:{listener.port}/_x", 2.0)
    assert listener.connections == 0


# ---------------------------------------------------------------- non-public redirects (issue 22)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "0.0.0.0"])
def test_a_redirect_to_a_local_address_is_refusable(listener, monkeypatch, host):
    """As found: a source answering 302 to http://127.0.0.1:<redis>/ was followed. With
    INGEST_HTTP_PRIVATE_REDIRECTS=refuse the hop is refused before connecting, for a literal
    address and for a name resolving to one."""
    monkeypatch.setenv("INGEST_HTTP_PRIVATE_REDIRECTS", "refuse")
    target = f"http://{host}:{listener.port}/SET:pwned:1"
    with HttpOrigin() as origin, HttpClientResource(redis_url="").session("w") as session:
        origin.set("/hop", Reply(302, headers={"Location": target}))
        with pytest.raises(HttpFetchError, match="non-public address"):
            session.get(origin.url("/hop"))
    assert listener.connections == 0


def test_urllib_redirects_to_local_addresses_are_refusable(listener):
    import urllib.request

    with HttpOrigin() as origin:
        origin.set("/h", Reply(302, headers={"Location": f"http://127.0.0.1:{listener.port}/"}))
        opener = urllib.request.build_opener(SafeRedirectHandler("refuse"))
        with pytest.raises(UnsafeUrlError, match="non-public address"):
            opener.open(origin.url("/h"), timeout=5)
    assert listener.connections == 0


def test_auto_refuses_only_when_a_public_origin_redirects(monkeypatch):
    """`auto` (the default): a public source may not send the crawl to a local address (named
    or literal); a local origin (the replays, these tests) may."""
    from ingestion_pipelines.core import url_policy

    real = socket.getaddrinfo
    fake = {"api.example.com": "93.184.216.34", "rebind.example.com": "10.1.2.3"}

    def resolve(host, *args, **kwargs):
        if host in fake:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (fake[host], 0))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(url_policy.socket, "getaddrinfo", resolve)
    check = url_policy.check_redirect_target
    public = "https://api.example.com/v1/x"
    for target in (
        "http://127.0.0.1:6379/",
        "http://localhost/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://rebind.example.com/",
        "http://192.168.1.1/",
    ):
        with pytest.raises(UnsafeUrlError, match="non-public"):
            check(public, target, "auto")
        assert check(public, target, "allow") == target
        assert check("http://127.0.0.1:8700/x", target, "auto") == target
        with pytest.raises(UnsafeUrlError):
            check("http://127.0.0.1:8700/x", target, "refuse")
    assert check(public, "https://api.example.com/v2/x", "refuse")  # public stays followed
    monkeypatch.setenv("INGEST_HTTP_PRIVATE_REDIRECTS", "sometimes")
    with pytest.raises(UnsafeUrlError, match="one of auto, refuse, allow"):
        url_policy.private_redirect_mode()


def test_the_default_follows_local_redirects_of_a_local_origin():
    """The replays redirect on 127.0.0.1: the default (auto) keeps following them."""
    with HttpOrigin() as origin, HttpClientResource(redis_url="").session("w") as session:
        origin.set("/hop", Reply(302, headers={"Location": origin.url("/landing")}))
        origin.set("/landing", Reply(200, body=b"ok"))
        assert session.get(origin.url("/hop")).content == b"ok"
