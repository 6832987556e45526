"""Provider order, health and failover (`sources.providers`), against a local HTTP server that
answers like the providers: the first blocks with 403, the second serves bars."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from ingestion_pipelines.core.timezones import ICT
from ingestion_pipelines.http_client.errors import HttpFetchError
from ingestion_pipelines.http_client.session import CrawlSession
from ingestion_pipelines.resources.rate_limit import LocalRateLimiter
from ingestion_pipelines.sources.providers import (
    Failover,
    FailureKind,
    HealthBook,
    HealthPolicy,
    MultiProviderSettings,
    ProvidersExhausted,
    classify,
    expected_newest_day,
    provider_order,
    trading_day_lag,
)

# A 403 as Vietcap's WAF sends it: an HTML page, not JSON (vnstock issue #223).
BLOCKED_BODY = b"<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1></center></body></html>"  # noqa: E501
WEEK = [date(2026, 11, 30) + timedelta(days=i) for i in range(5)]  # Mon 30 Nov - Fri 4 Dec 2026


class _Providers(BaseHTTPRequestHandler):
    hits: Counter = Counter()
    vndirect_status = 403

    def _answer(self) -> None:
        provider = self.path.split("/")[1]
        type(self).hits[provider] += 1
        if provider == "vndirect" and self.vndirect_status != 200:
            self.send_response(self.vndirect_status)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(BLOCKED_BODY)
            return
        if provider == "vndirect":
            self._json(
                {
                    "data": [{"code": "FPT", "date": "2026-11-30", "close": 66.4}],
                    "currentPage": 1,
                    "size": 1,
                    "totalElements": 1,
                    "totalPages": 1,
                }
            )
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        bars = [{"symbol": body["symbols"][0], "o": [66500], "h": [66800], "l": [66100],
                 "c": [66400], "v": [4321000], "t": [str(body["to"] - 86400)]}]  # fmt: skip
        self._json(bars)

    def _json(self, data) -> None:
        payload = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def providers_server():
    _Providers.hits = Counter()
    _Providers.vndirect_status = 403
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Providers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _session() -> CrawlSession:
    return CrawlSession(
        "vn_stock_eod", rate_limiter=LocalRateLimiter(), impersonate=None, timeout_s=5,
        backoff_base_s=0.01, backoff_max_s=0.02,
    )  # fmt: skip


def _fetch(session: CrawlSession, base: str, provider: str, day: date):
    if provider == "vndirect":
        q = f"code:FPT~date:gte:{day}~date:lte:{day}"
        return session.get(f"{base}/vndirect/v4/stock_prices", params={"q": q, "size": 1}).json()
    to = int(datetime.combine(day + timedelta(days=1), datetime.min.time(), ICT).timestamp())
    body = {"timeFrame": "ONE_DAY", "symbols": ["FPT"], "to": to, "countBack": 1}
    return session.post(f"{base}/vietcap/api/chart/OHLCChart/gap-chart", json=body).json()


def _run(failover: Failover, base: str, days=WEEK) -> None:
    """What the runner does per partition: ask the chosen provider, fail over when told."""
    session = _session()
    for day in days:
        partition = day.isoformat()
        provider = failover.choose(partition)
        while True:
            try:
                payload = _fetch(session, base, provider, day)
            except HttpFetchError as exc:
                provider = failover.on_failure(partition, provider, exc)
                continue
            failover.on_success(partition, provider, newest_day=day, rows=len(payload))
            break


def test_a_blocked_first_provider_costs_one_request_and_the_run_completes(providers_server):
    clock = [datetime(2026, 12, 4, 11, 0, tzinfo=UTC)]
    failover = Failover("vn_stock_eod", ["vndirect", "vietcap"], clock=lambda: clock[0])
    _run(failover, providers_server)

    assert _Providers.hits == {"vndirect": 1, "vietcap": 5}  # 403 is not retried
    assert all(failover.provider_of(d.isoformat()) == "vietcap" for d in WEEK)
    meta = failover.metadata()
    assert meta["partitions_by_provider"] == {"vietcap": 5}
    assert meta["failovers"] == 1
    assert meta["first_failovers"][0]["from"] == "vndirect"
    assert "blocked" in meta["first_failovers"][0]["reason"]
    assert "403" in meta["first_failovers"][0]["reason"]
    health = meta["provider_health"]
    assert health["vndirect"]["blocked_status"] == 403
    assert health["vietcap"]["newest_day"] == "2026-12-04"
    json.dumps(meta)  # run metadata must be plain JSON

    # The next run starts from that health: the blocked provider is not asked at all ...
    _Providers.hits.clear()
    book = HealthBook(["vndirect", "vietcap"], snapshot=json.loads(json.dumps(health)))
    again = Failover("vn_stock_eod", ["vndirect", "vietcap"], book, clock=lambda: clock[0])
    _run(again, providers_server)
    assert _Providers.hits == {"vietcap": 5}
    # ... until retry_after has passed; then it is tried first again, and recovers.
    _Providers.hits.clear()
    _Providers.vndirect_status = 200
    clock[0] += HealthPolicy().retry_after
    later = Failover("vn_stock_eod", ["vndirect", "vietcap"], book, clock=lambda: clock[0])
    _run(later, providers_server, days=WEEK[:1])
    assert _Providers.hits == {"vndirect": 1}
    assert later.provider_of(WEEK[0].isoformat()) == "vndirect"
    assert book.health["vndirect"].blocked_status is None


def test_consecutive_failures_make_a_provider_unhealthy_until_retry_after():
    now = [datetime(2026, 12, 4, 11, 0, tzinfo=UTC)]
    policy = HealthPolicy(max_consecutive_failures=2, retry_after=timedelta(hours=1))
    book = HealthBook(["a", "b"], policy)
    failover = Failover("vn_indices", ["a", "b"], book, clock=lambda: now[0])
    server_error = HttpFetchError("vn_indices", "http://a/x", "HTTP 503", 503)
    for partition in ("p1", "p2"):
        assert failover.choose(partition) == "a"
        assert failover.on_failure(partition, "a", server_error) == "b"
        assert failover.on_success(partition, "b") is None
    assert failover.choose("p3") == "b"  # two failures in a row: "a" is skipped
    now[0] += timedelta(hours=1)
    assert failover.choose("p4") == "a"  # retried after retry_after
    failover.on_success("p4", "a")
    assert book.health["a"].consecutive_failures == 0 and book.usable("a", now[0])


def test_every_provider_failing_names_each_cause_without_secrets():
    failover = Failover("vn_financial_statements", ["vndirect", "vietcap"])
    p = "FPT:2016-2025"
    assert failover.choose(p) == "vndirect"
    leak = HttpFetchError("w", "https://user:hunter22@api.example/x", "HTTP 451", 451)
    assert failover.on_failure(p, "vndirect", leak) == "vietcap"
    with pytest.raises(ProvidersExhausted) as caught:
        failover.on_failure(p, "vietcap", ConnectionError("connection reset"))
    message = str(caught.value)
    assert "vn_financial_statements" in message and p in message
    assert "vndirect: blocked" in message and "vietcap: failed" in message
    assert "hunter22" not in message
    assert "hunter22" not in json.dumps(failover.metadata())


def test_a_stale_provider_hands_the_partition_to_the_next_one():
    now = datetime(2026, 12, 4, 18, 0, tzinfo=ICT)  # Friday after the close
    wanted = expected_newest_day(now)
    assert wanted == date(2026, 12, 4)
    failover = Failover("vn_indices", ["vndirect", "vietcap"], clock=lambda: now)
    assert failover.choose("week") == "vndirect"
    following = failover.on_success(
        "week", "vndirect", newest_day=date(2026, 12, 2), wanted_day=wanted, rows=3
    )
    assert following == "vietcap"
    assert "2 trading days behind" in failover.failovers[0]["reason"]
    assert failover.on_success("week", "vietcap", newest_day=wanted, wanted_day=wanted) is None
    assert failover.metadata()["rows_by_provider"] == {"vndirect": 3, "vietcap": 0}


def test_market_calendar_decides_the_expected_day_and_the_lag():
    assert expected_newest_day(datetime(2026, 12, 4, 10, 0, tzinfo=ICT)) == date(2026, 12, 3)
    assert expected_newest_day(datetime(2026, 12, 6, 9, 0, tzinfo=ICT)) == date(2026, 12, 4)
    assert trading_day_lag(date(2026, 12, 4), date(2026, 12, 4)) == 0
    assert trading_day_lag(date(2026, 12, 4), date(2026, 12, 7)) == 1  # the weekend is no lag
    assert trading_day_lag(None, date(2026, 12, 7)) is None


def test_classification_and_configured_order():
    assert classify(HttpFetchError("w", "http://x", "HTTP 403", 403)) is FailureKind.BLOCKED
    assert classify(HttpFetchError("w", "http://x", "HTTP 401", 401)) is FailureKind.BLOCKED
    assert classify(HttpFetchError("w", "http://x", "HTTP 500", 500)) is FailureKind.FAILED
    assert classify(TimeoutError()) is FailureKind.FAILED
    assert provider_order(None, ["vndirect", "vietcap"]) == ["vndirect", "vietcap"]
    assert provider_order(["vietcap"], ["vndirect", "vietcap"]) == ["vietcap"]
    with pytest.raises(ValueError, match="tcbs"):
        provider_order(["tcbs"], ["vndirect", "vietcap"])
    assert MultiProviderSettings(providers=["Vietcap", "vndirect"]).providers == [
        "vietcap", "vndirect"
    ]  # fmt: skip
    with pytest.raises(ValidationError, match="twice"):
        MultiProviderSettings(providers=["vietcap", "VIETCAP"])


def test_requests_already_in_flight_each_fail_over_once():
    """With concurrency, partitions sent to the first provider before its 403 came back each
    cost that one request, and no more."""
    failover = Failover("vn_stock_eod", ["vndirect", "vietcap"])
    in_flight = {p: failover.choose(p) for p in ("d1", "d2", "d3")}
    assert set(in_flight.values()) == {"vndirect"}
    blocked = HttpFetchError("vn_stock_eod", "http://x/v4/stock_prices", "HTTP 403", 403)
    assert [failover.on_failure(p, "vndirect", blocked) for p in in_flight] == ["vietcap"] * 3
    assert failover.choose("d4") == "vietcap"  # later partitions never ask the blocked one
    for p in ("d1", "d2", "d3"):
        failover.on_success(p, "vietcap", rows=1)
    assert failover.metadata()["failovers"] == 3
