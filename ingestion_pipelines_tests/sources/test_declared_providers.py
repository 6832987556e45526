"""Declared providers (`sources/declared_providers.py`) through the engine: `vn_indices` from
VNDIRECT and Vietcap, `coingecko_markets` from CoinGecko and CoinPaprika, each provider's
recording served at its real path by a local server that counts requests per path; the first
provider can be switched to answer 403 (as Vietcap's and VNDIRECT's WAFs do), or an empty day."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from ingestion_pipelines.http_client.session import CrawlSession
from ingestion_pipelines.resources.rate_limit import LocalRateLimiter
from ingestion_pipelines.sources.base import Window
from ingestion_pipelines.sources.declared import declared_sources
from ingestion_pipelines.sources.providers import ProvidersExhausted
from ingestion_pipelines.sources.runner import crawl
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema

DEFS = Path(__file__).resolve().parents[2] / "ingestion_pipelines" / "defs"
INDICES = DEFS / "vn_indices" / "data"
VNDIRECT_PATH = "/v4/vnmarket_prices"
VIETCAP_PATH = "/api/chart/OHLCChart/gap-chart"
COINGECKO_PATH = "/api/v3/coins/markets"
COINPAPRIKA_PATH = "/v1/tickers"
DAYS = [date(2025, 12, 3), date(2025, 12, 4), date(2025, 12, 5)]  # the recordings' trading days
BLOCKED_BODY = b"<html><head><title>403 Forbidden</title></head><body>403 Forbidden</body></html>"

SERVED = {
    VNDIRECT_PATH: (INDICES / "vndirect_vnmarket_prices_VN30_2025-12-03_05.json").read_bytes(),
    VIETCAP_PATH: (INDICES / "vietcap_gap_chart_VN30_2025-12-03_05.json").read_bytes(),
    COINGECKO_PATH: (DEFS / "coingecko_markets/data/coingecko_coins_markets.json").read_bytes(),
    COINPAPRIKA_PATH: (
        DEFS / "coinpaprika_markets/data/v1_tickers_2023-07-11_first.json"
    ).read_bytes(),
}


class _Providers(BaseHTTPRequestHandler):
    hits: Counter = Counter()
    blocked: set[str] = set()  # paths answering 403
    empty: set[str] = set()  # paths answering a page with no rows

    def _answer(self) -> None:
        path = self.path.split("?")[0]
        type(self).hits[path] += 1
        if int(self.headers.get("Content-Length") or 0):
            self.rfile.read(int(self.headers["Content-Length"]))
        if path in self.blocked:
            self._send(403, "text/html", BLOCKED_BODY)
        elif path in self.empty:
            self._send(200, "application/json", b'{"data": [], "totalElements": 0}')
        elif path == COINGECKO_PATH and "page=1" not in self.path:
            self._send(200, "application/json", b"[]")  # CoinGecko's end: an empty page
        elif path in SERVED:
            self._send(200, "application/json", SERVED[path])
        else:
            self._send(404, "application/json", b'{"error": "not found"}')

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def server():
    _Providers.hits = Counter()
    _Providers.blocked = set()
    _Providers.empty = set()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Providers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    dispose_all()


def _run(worker_id: str, url: str, base: str, days: list[date] | None = None, **settings):
    """One run of a declared worker through the engine (its window: `days`)."""
    cls = declared_sources()[worker_id]
    if worker_id == "vn_indices":
        settings = {"base_url": base, "vietcap_base_url": base, **settings}
    else:
        settings = {"base_url": f"{base}/api/v3", "coinpaprika_base_url": f"{base}/v1", **settings}
    window = None
    if days:
        window = Window(days[0], days[-1] + timedelta(days=1), "Asia/Ho_Chi_Minh")
    source = cls(cls.Settings(database_url=url, **settings), window)
    session = CrawlSession(
        worker_id, rate_limiter=LocalRateLimiter(), impersonate=None, timeout_s=5,
        backoff_base_s=0.01, backoff_max_s=0.02,
    )  # fmt: skip
    engine = ensure_schema(url)
    return crawl(source, session=session, data_engine=engine, control_engine=engine)


def _rows(url: str, table, *columns):
    with ensure_schema(url).connect() as conn:
        chosen = [table.c[c] for c in columns]
        return [tuple(r) for r in conn.execute(select(*chosen).order_by(*chosen[:2]))]


def _health(url: str, worker_id: str) -> dict:
    with ensure_schema(url).connect() as conn:
        details = conn.execute(
            select(tables.worker_state.c.details).where(
                tables.worker_state.c.worker_id == worker_id
            )
        ).scalar_one()
    return details["providers"]


def test_a_blocked_first_provider_costs_at_most_one_extra_request_per_partition(
    server, sqlite_url
):
    """Issue 19's measure: VNDIRECT answers 403; each partition (one run per trading day)
    completes from Vietcap; the 403 costs one request in the first run and none after (its
    health, kept between runs, skips the blocked provider until retry_after)."""
    _Providers.blocked = {VNDIRECT_PATH}
    extra_per_partition = []
    for day in DAYS:
        before = dict(_Providers.hits)
        result = _run("vn_indices", sqlite_url, server, [day])
        sent = {p: n - before.get(p, 0) for p, n in _Providers.hits.items()}
        extra_per_partition.append(sum(sent.values()) - 1)  # one request is the partition's own
        assert sent.get(VIETCAP_PATH) == 1
        meta = result.metadata()
        assert meta["partitions_by_provider"] == {"vietcap": 1}
        assert result.written.inserted == 1

    assert extra_per_partition == [1, 0, 0]
    assert _Providers.hits == {VNDIRECT_PATH: 1, VIETCAP_PATH: 3}  # a 403 is not retried
    stored = _rows(sqlite_url, tables.index_eod, "index_code", "trade_date", "close", "provider")
    assert stored == [
        ("VN30", DAYS[0], Decimal("1971.99"), "vietcap"),
        ("VN30", DAYS[1], Decimal("1979.53"), "vietcap"),
        ("VN30", DAYS[2], Decimal("1975.5"), "vietcap"),
    ]
    health = _health(sqlite_url, "vn_indices")
    assert health["vndirect"]["blocked_status"] == 403
    assert health["vietcap"]["newest_day"] == "2025-12-05"


def test_the_failover_is_in_the_runs_metadata(server, sqlite_url):
    _Providers.blocked = {VNDIRECT_PATH}
    meta = _run("vn_indices", sqlite_url, server, DAYS).metadata()
    assert meta["providers_order"] == ["vndirect", "vietcap"]
    assert meta["failovers"] == 1
    (first,) = meta["first_failovers"]
    assert (first["from"], first["to"]) == ("vndirect", "vietcap")
    assert "blocked" in first["reason"] and "403" in first["reason"]
    assert meta["rows_by_provider"] == {"vietcap": 3}
    json.dumps(meta)  # plain JSON, as Dagster's metadata takes it


def test_units_are_the_same_from_either_provider(server, sqlite_url, tmp_path):
    """Index points from VNDIRECT and Vietcap land as the same exact decimals, each row
    naming its provider; the codes are issue 19's whatever the provider calls them."""
    _run("vn_indices", sqlite_url, server, DAYS)
    other = f"sqlite:///{tmp_path / 'vietcap.db'}"
    _Providers.blocked = {VNDIRECT_PATH}
    _run("vn_indices", other, server, DAYS)
    columns = ("index_code", "trade_date", "open", "high", "low", "close")
    vndirect = _rows(sqlite_url, tables.index_eod, *columns, "provider")
    vietcap = _rows(other, tables.index_eod, *columns, "provider")
    assert [r[:-1] for r in vndirect] == [r[:-1] for r in vietcap]
    assert {r[-1] for r in vndirect} == {"vndirect"} and {r[-1] for r in vietcap} == {"vietcap"}


def test_a_provider_stale_for_a_due_day_is_backed_by_the_next(server, sqlite_url):
    """VNDIRECT answers an empty page for a due trading day: Vietcap is asked for the
    partition too (one extra request), and its rows are stored."""
    _Providers.empty = {VNDIRECT_PATH}
    meta = _run("vn_indices", sqlite_url, server, DAYS).metadata()
    assert _Providers.hits == {VNDIRECT_PATH: 1, VIETCAP_PATH: 1}
    assert "stale" in meta["first_failovers"][0]["reason"]
    assert len(_rows(sqlite_url, tables.index_eod, "index_code", "trade_date")) == 3


def test_every_provider_failing_fails_the_run_naming_each_cause(server, sqlite_url):
    _Providers.blocked = {VNDIRECT_PATH, VIETCAP_PATH}
    with pytest.raises(ProvidersExhausted, match="vndirect: blocked.*vietcap: blocked"):
        _run("vn_indices", sqlite_url, server, DAYS)
    health = _health(sqlite_url, "vn_indices")  # kept although the run failed
    assert health["vietcap"]["blocked_status"] == 403


def test_the_provider_order_is_a_setting(server, sqlite_url):
    _run("vn_indices", sqlite_url, server, DAYS, providers=["vietcap", "vndirect"])
    assert _Providers.hits == {VIETCAP_PATH: 1}


def test_coinpaprika_serves_crypto_market_snapshot_when_coingecko_is_blocked(server, sqlite_url):
    """Issue 21: CoinGecko first, CoinPaprika second, into the one `crypto_market_snapshot`;
    CoinPaprika's rows keep its own coin ids and its USD figures in the same columns."""
    _run("coingecko_markets", sqlite_url, server)
    coingecko = _rows(
        sqlite_url, tables.crypto_market_snapshot, "coin_id", "captured_at", "provider"
    )
    assert coingecko and {r[2] for r in coingecko} == {"coingecko"}

    _Providers.blocked = {COINGECKO_PATH}
    before = dict(_Providers.hits)
    meta = _run("coingecko_markets", sqlite_url, server).metadata()
    assert _Providers.hits[COINGECKO_PATH] - before[COINGECKO_PATH] == 1
    assert _Providers.hits[COINPAPRIKA_PATH] == 1
    assert meta["partitions_by_provider"] == {"coinpaprika": 1}
    columns = ("coin_id", "provider", "symbol", "price_usd", "market_cap_usd", "volume_24h_usd")
    rows = [
        r for r in _rows(sqlite_url, tables.crypto_market_snapshot, *columns) if r[1] != "coingecko"
    ]
    assert [r[:3] for r in rows] == [("btc-bitcoin", "coinpaprika", "BTC")]
    btc = json.loads(SERVED[COINPAPRIKA_PATH], parse_float=Decimal)[0]["quotes"]["USD"]
    assert rows[0][3:] == (btc["price"], btc["market_cap"], btc["volume_24h"])
