"""The browser on Debian's Chromium against the local challenge: clearance handed to HTTP,
cookies new per visit, bound to the User-Agent and expiring, FlareSolverr's contract, the pool's
bound, the shared rate limit, and the evidence of a failed page. One browser for the module."""

from __future__ import annotations

import threading

import pytest

from ingestion_pipelines.browser.challenge_gate import COOKIE, ChallengeGate
from ingestion_pipelines.browser.clearance import (
    BrowserSolver,
    ClearedFetcher,
    FlareSolverrSolver,
    is_challenge,
)
from ingestion_pipelines.browser.pool import BrowserPageError, BrowserPool, BrowserSettings
from ingestion_pipelines.http_client.resource import HttpClientResource
from ingestion_pipelines.replay.http_server import ReplayServer
from ingestion_pipelines_tests.browser.flaresolverr_standin import FlareSolverrStandIn

PNG = b"\x89PNG\r\n\x1a\n"


class RecordingLimiter:
    """The rate limiter's interface, recording each slot taken."""

    def __init__(self):
        self.hosts: list[str] = []

    def acquire(self, host, rate_per_s):
        self.hosts.append(host)
        return 0.0

    def pause(self, host, seconds):
        pass


LIMITER = RecordingLimiter()


@pytest.fixture(scope="module")
def pool():
    # the captured pages' ads and CDN scripts are unreachable here: not waited for
    settings = BrowserSettings(
        pool_size=2, navigation_timeout_s=20, selector_timeout_s=6, block_third_party=True
    )
    with BrowserPool(settings, rate_limiter=LIMITER, rate_limit_per_s=50) as started:
        yield started


@pytest.fixture
def site():
    with ReplayServer() as server:
        yield server


def session():
    return HttpClientResource(redis_url="").session("lyngsat", impersonate="chrome", max_retries=0)


def page_url(site, name="Amos-3-7"):
    return f"{site.url}/lyngsat/{name}.html"


def test_browser_starts_quickly(pool):
    assert pool.start_s is not None and pool.start_s < 5.0


def test_plain_http_meets_the_challenge_and_one_clearance_lets_http_through(pool, site):
    gate: ChallengeGate = site.dataset.lyngsat_site.gate
    with session() as http:
        first = http.request("GET", page_url(site), accept_statuses=(403,))
        assert first.status == 403 and first.headers["cf-mitigated"] == "challenge"
        assert is_challenge(first) and b"Just a moment..." in first.content
        navigations = pool.navigations
        fetcher = ClearedFetcher(http, BrowserSolver(pool))
        bodies = [
            fetcher.get(page_url(site, name)).content for name in ("Amos-3-7", "Astra-3B") * 3
        ]
    assert fetcher.clearances == 1 and pool.navigations == navigations + 1
    assert bodies[0] == site.dataset.lyngsat_site.pages["Amos-3-7"]  # byte for byte, ISO-8859-1
    assert b"Astra 3B at 23.5" in bodies[1]
    # the HTTP session sent the browser's exact User-Agent with the cookie
    cleared = [r for r in site.requests if COOKIE in r.headers.get("cookie", "")]
    assert {r.headers["user-agent"] for r in cleared} == {fetcher.current.user_agent}
    assert "HeadlessChrome" not in fetcher.current.user_agent
    assert gate.challenges == 3 and gate.passed >= 6  # plain HTTP twice, the browser once


def test_the_cookie_differs_per_visit_and_is_bound_to_the_user_agent(pool, site):
    one = pool.fetch(page_url(site), user_agent="Mozilla/5.0 (X11; Linux x86_64) Test/1")
    two = pool.fetch(page_url(site), user_agent="Mozilla/5.0 (X11; Linux x86_64) Test/2")
    cookie_one = next(c for c in one.cookies if c["name"] == COOKIE)
    cookie_two = next(c for c in two.cookies if c["name"] == COOKIE)
    assert cookie_one["value"] != cookie_two["value"]
    assert one.status == two.status == 200 and "Amos 3/7" in one.title
    with session() as http:
        http.adopt_clearance([cookie_one], "Mozilla/5.0 (X11; Linux x86_64) Test/2")
        refused = http.request("GET", page_url(site), accept_statuses=(403,))
        assert is_challenge(refused)
        http.adopt_clearance([cookie_one], "Mozilla/5.0 (X11; Linux x86_64) Test/1")
        assert http.get(page_url(site)).status == 200


def test_an_expired_or_refused_clearance_is_cleared_again(pool, site):
    gate: ChallengeGate = site.dataset.lyngsat_site.gate
    now = [1000.0]
    gate.clock = lambda: now[0]
    with session() as http:
        fetcher = ClearedFetcher(http, BrowserSolver(pool))
        assert fetcher.get(page_url(site)).status == 200
        now[0] += gate.ttl_s - 1
        assert fetcher.get(page_url(site)).status == 200 and fetcher.clearances == 1
        now[0] += 2  # past the clearance's lifetime
        assert fetcher.get(page_url(site)).status == 200 and fetcher.clearances == 2
        gate.expire_all()  # the site stops honouring every clearance
        assert fetcher.get(page_url(site)).status == 200 and fetcher.clearances == 3


def test_flaresolverr_contract_clears_and_http_carries_on(pool, site):
    with FlareSolverrStandIn(pool) as service, session() as http:
        fetcher = ClearedFetcher(http, FlareSolverrSolver(service.url, timeout_s=20))
        assert fetcher.get(page_url(site, "Astra-3B")).status == 200
        assert fetcher.get(page_url(site)).status == 200
    assert service.commands == [
        {"cmd": "request.get", "url": page_url(site, "Astra-3B"), "maxTimeout": 20000}
    ]
    assert fetcher.clearances == 1 and fetcher.current.solver == "flaresolverr"


def test_contexts_stay_within_the_pool_and_navigations_take_rate_limit_slots(pool, site):
    before = len(LIMITER.hosts)
    errors = []

    def visit(n):
        try:
            pool.fetch(page_url(site), user_agent=f"Mozilla/5.0 Pool/{n}")
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=visit, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and pool.open_contexts() <= 2
    assert LIMITER.hosts[before:].count(f"127.0.0.1:{site.port}") >= 4


def test_a_missing_selector_leaves_a_screenshot_and_the_html(pool, site):
    with pytest.raises(BrowserPageError) as failed:
        pool.fetch(page_url(site), wait_for="#no-such-table")
    evidence = failed.value.evidence
    assert evidence.screenshot.startswith(PNG) and len(evidence.screenshot) > 1000
    assert "Amos 3/7" in evidence.html


def test_a_challenge_that_never_clears_fails_with_evidence(pool, site):
    site.dataset.lyngsat_site.gate = ChallengeGate(delay_ms=600_000)  # its script never finishes
    with pytest.raises(BrowserPageError, match="challenge not cleared within 1s") as failed:
        pool.fetch(page_url(site), challenge_timeout_s=1)
    assert failed.value.evidence.screenshot.startswith(PNG)
    assert "Just a moment..." in failed.value.evidence.html
