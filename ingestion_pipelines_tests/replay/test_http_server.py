"""The HTTP replay server, over real HTTP: curl_cffi impersonating Chrome (as the product does)
and plain urllib for the non-browser cases."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import feedparser
import pytest
from curl_cffi import requests as cffi

from ingestion_pipelines.replay.dataset import ReplayDataset, read_variant
from ingestion_pipelines.replay.http_server import ReplayServer
from ingestion_pipelines.sources.news.replay import CAFEF_PATH, VNEXPRESS_PATH

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # 19:00 ICT, every NAV of the day out
FILTER = "/res/products/filter"
NAV = "/res/product/get-nav-history"
MARKETS = "/api/v3/coins/markets"
FILTER_BODY = {
    "types": ["NEW_FUND", "TRADING_FUND"],
    "issuerIds": [],
    "sortOrder": "DESC",
    "sortField": "navTo6Months",
    "page": 1,
    "pageSize": 20,
    "isIpo": False,
    "fundAssetTypes": [],
    "bondRemainPeriods": [],
    "searchField": "",
    "isBuyByReward": False,
    "thirdAppIds": [],
}
COIN_FIELDS = [
    "id", "symbol", "name", "image", "current_price", "market_cap", "market_cap_rank",
    "fully_diluted_valuation", "total_volume", "high_24h", "low_24h", "price_change_24h",
    "price_change_percentage_24h", "market_cap_change_24h", "market_cap_change_percentage_24h",
    "circulating_supply", "total_supply", "max_supply", "ath", "ath_change_percentage",
    "ath_date", "atl", "atl_change_percentage", "atl_date", "roi", "last_updated",
]  # fmt: skip


@pytest.fixture
def server():
    with ReplayServer(host="127.0.0.1", port=0, dataset=ReplayDataset(now=NOW)) as replay:
        yield replay


def post(server, path, body):
    return cffi.post(server.url + path, json=body, impersonate="chrome", timeout=10)


def get(server, path, **kwargs):
    return cffi.get(server.url + path, impersonate="chrome", timeout=10, **kwargs)


def plain_get(url, headers=None):
    """urllib: a non-browser client. Returns (status, headers, body)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


# ---------------------------------------------------------------- fmarket fund list


def test_fund_list_pages_through_every_fund(server):
    seen, page = [], 1
    while True:
        data = post(server, FILTER, {**FILTER_BODY, "page": page}).json()["data"]
        assert data["total"] == len(server.dataset.funds) == 58
        if not data["rows"]:
            break
        seen += data["rows"]
        page += 1
    assert page == 4  # 20 + 20 + 18, then an empty page
    assert len({row["id"] for row in seen}) == 58
    changes = [row["productNavChange"]["navTo6Months"] for row in seen]
    assert changes == sorted(changes, reverse=True)


def test_fund_rows_have_the_real_shape_and_consistent_nav(server):
    response = post(server, FILTER, {**FILTER_BODY, "pageSize": 100})
    body = response.json()
    assert response.status_code == 200
    assert (body["status"], body["code"], body["message"]) == (200, 200, "Thành công")
    [row] = [row for row in body["data"]["rows"] if row["id"] == 23]
    assert (row["id"], row["code"], row["shortName"]) == (23, "VESAF", "VESAF")
    assert row["owner"]["name"] == "CÔNG TY CỔ PHẦN QUẢN LÝ QUỸ VINACAPITAL"
    assert row["owner"]["shortName"] == "VINACAPITAL"
    assert row["dataFundAssetType"] == {"id": 1, "name": "Quỹ cổ phiếu", "code": "STOCK"}
    assert row["firstIssueAt"] == 1492448400000  # 2017-04-18 00:00 ICT
    # the recorded NAV figures are the NAV model's as of the recording's day (its PROVENANCE)
    model, latest = server.dataset.spec(23), date(2026, 12, 4)
    assert row["nav"] == model.nav(latest) == row["extra"]["currentNAV"]
    change = row["productNavChange"]
    assert change["updateAt"] == model.published_at_ms(latest)
    assert set(change) >= {"navToPrevious", "navTo6Months", "navTo36Months", "navTo60Months"}


def test_fund_list_filters_by_asset_type(server):
    body = {**FILTER_BODY, "fundAssetTypes": ["BOND"], "pageSize": 100}
    rows = post(server, FILTER, body).json()["data"]["rows"]
    assert rows and {row["dataFundAssetType"]["code"] for row in rows} == {"BOND"}


def test_a_test_can_serve_a_malformed_fund_row(server):
    server.dataset.funds[0]["nav"] = "n/a"
    del server.dataset.funds[1]["owner"]
    rows = post(server, FILTER, {"page": 1, "pageSize": 100}).json()["data"]["rows"]
    assert rows[0]["nav"] == "n/a"
    assert "owner" not in rows[1]


# ---------------------------------------------------------------- fmarket NAV history


def test_nav_history_serves_weekday_rows_in_range(server):
    body = {"isAllData": 0, "productId": 23, "fromDate": "20261101", "toDate": "20261130"}
    response = post(server, NAV, body)
    assert response.status_code == 200
    rows = response.json()["data"]
    days = [date.fromisoformat(row["navDate"]) for row in rows]
    assert days[0] == date(2026, 11, 2) and days[-1] == date(2026, 11, 23)  # no future NAV
    assert days == sorted(days) and all(day.weekday() < 5 for day in days)
    assert len(days) == 16
    for row in rows:
        assert set(row) == {"id", "createdAt", "updatedAt", "nav", "navDate", "productId"}
        assert row["productId"] == 23
        assert row["nav"] == server.dataset.nav(23, date.fromisoformat(row["navDate"]))


def test_nav_history_starts_at_inception(server):
    spec = server.dataset.spec(84)  # VDEF, launched in 2023
    assert spec.inception == date(2023, 8, 10)
    body = {"isAllData": 0, "productId": 84, "fromDate": "20150101", "toDate": "20230815"}
    rows = post(server, NAV, body).json()["data"]
    assert rows[0]["navDate"] == "2023-08-10" and rows[0]["nav"] == 10000.0
    assert len(rows) == 4  # Thu, Fri, Mon, Tue


def test_nav_values_are_deterministic():
    a, b = ReplayDataset(now=NOW), ReplayDataset(now=NOW + timedelta(days=30))
    day = date(2021, 6, 15)
    assert a.nav(11, day) == b.nav(11, day) is not None
    assert a.nav(11, date(2021, 6, 19)) is None  # a Saturday


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({"isAllData": 0, "productId": 23, "fromDate": "20261101"}, "toDate"),
        ({"isAllData": 0, "productId": 23, "toDate": "20261130"}, "fromDate"),
        (
            {"isAllData": 0, "productId": 23, "fromDate": "2026/11/01", "toDate": "20261130"},
            "fromDate",
        ),
        ({"isAllData": 0, "productId": 23, "fromDate": "20261101", "toDate": "20261340"}, "toDate"),
    ],
)
def test_nav_history_answers_400_without_valid_dates(server, body, target):
    response = post(server, NAV, body)
    assert response.status_code == 400
    error = response.json()
    assert (error["status"], error["code"], error["target"], error["data"]) == (
        400,
        400,
        target,
        None,
    )


def test_a_test_can_serve_a_malformed_nav_row(server):
    server.dataset.nav_overrides[(23, date(2026, 11, 20))] = {"nav": None}
    server.dataset.nav_overrides[(23, date(2026, 11, 19))] = None  # no row that day
    body = {"isAllData": 0, "productId": 23, "fromDate": "20261118", "toDate": "20261120"}
    rows = post(server, NAV, body).json()["data"]
    assert [(row["navDate"], row["nav"] is None) for row in rows] == [
        ("2026-11-18", False),
        ("2026-11-20", True),
    ]


# ---------------------------------------------------------------- RSS


def test_cafef_answers_503_to_non_browsers(server):
    url = server.url + CAFEF_PATH
    assert plain_get(url)[0] == 503  # Python-urllib
    assert plain_get(url, {"User-Agent": "curl/8.5.0"})[0] == 503
    assert plain_get(url, {"User-Agent": "python-requests/2.32.3"})[0] == 503
    assert plain_get(url, {"User-Agent": ""})[0] == 503
    response = get(server, CAFEF_PATH)
    assert response.status_code == 200
    assert response.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')


def test_vnexpress_is_served_to_any_client(server):
    status, headers, body = plain_get(server.url + VNEXPRESS_PATH)
    assert status == 200 and headers["Content-Type"].startswith("text/xml")
    assert body == server.dataset.feeds[VNEXPRESS_PATH].body


@pytest.mark.parametrize("path", [VNEXPRESS_PATH, CAFEF_PATH])
def test_conditional_get_answers_304(server, path):
    first = get(server, path)
    etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert first.status_code == 200 and etag and last_modified.endswith("GMT")
    for headers in ({"If-None-Match": etag}, {"If-Modified-Since": last_modified}):
        again = get(server, path, headers=headers)
        assert again.status_code == 304 and again.content == b""
        assert again.headers["ETag"] == etag
    assert get(server, path, headers={"If-None-Match": '"stale"'}).status_code == 200

    server.dataset.set_feed(path, first.content.replace(b"</channel>", b"<!-- x --></channel>"))
    changed = get(server, path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_feeds_hold_the_tricky_items_of_real_feeds(server):
    vne = feedparser.parse(get(server, VNEXPRESS_PATH).content)
    cafef = feedparser.parse(get(server, CAFEF_PATH).content)
    assert not vne.bozo and not cafef.bozo
    assert vne.feed.title == "Kinh doanh - VnExpress RSS"
    for feed in (vne, cafef):
        links = [entry.link for entry in feed.entries]
        assert len(links) > len(set(links))  # an article listed twice
        after_midnight = [e for e in feed.entries if e.published.endswith("00:05:00 +0700")
                          or e.published.endswith("00:02:00 +0700")]  # fmt: skip
        assert after_midnight and after_midnight[0].published_parsed.tm_mday == 22  # UTC day
    titles = [entry.title for entry in vne.entries]
    assert "Vietjet & Airbus ký thỏa thuận mua thêm 40 máy bay A321neo" in titles
    raw = server.dataset.feeds[VNEXPRESS_PATH].body.decode()
    assert "</a></br>" in raw and '<enclosure type="image/jpeg"' in raw


# ---------------------------------------------------------------- CoinGecko


def test_coingecko_pages_then_an_empty_list(server):
    coins, page = [], 1
    while True:
        query = f"?vs_currency=usd&order=market_cap_desc&per_page=100&page={page}"
        response = get(server, MARKETS + query)
        assert response.status_code == 200
        batch = response.json()
        if not batch:
            break
        coins += batch
        page += 1
    assert (
        page == 4 and len(coins) == len(server.dataset.recorded["coingecko_markets"].records) == 295
    )
    assert list(coins[0]) == COIN_FIELDS and coins[0]["id"] == "bitcoin"
    assert any(coin["max_supply"] is None for coin in coins)
    assert any(coin["fully_diluted_valuation"] is None for coin in coins)
    assert any(isinstance(coin["roi"], dict) for coin in coins)
    assert any(coin["market_cap_rank"] is None for coin in coins)
    assert any(0 < coin["current_price"] < 0.0001 for coin in coins)


def test_coingecko_429_fault_with_retry_after(server):
    server.faults.add(path=MARKETS, status=429, times=2, retry_after=1)
    statuses = []
    for _ in range(3):
        response = get(server, MARKETS + "?vs_currency=usd&per_page=5&page=1")
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "1"
            assert response.json()["status"]["error_code"] == 429
            assert "exceeded the Rate Limit" in response.json()["status"]["error_message"]
    assert statuses == [429, 429, 200]


def test_coingecko_rate_limit_option():
    with ReplayServer(coingecko_rate_limit=3) as replay:
        responses = [get(replay, MARKETS + "?vs_currency=usd&per_page=1") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert 1 <= int(responses[-1].headers["Retry-After"]) <= 60


def test_coingecko_rejects_a_missing_currency(server):
    response = get(server, MARKETS + "?per_page=1")
    assert response.status_code == 400 and "vs_currency" in response.json()["error"]


# ---------------------------------------------------------------- Fear & Greed


def test_fng_limit_zero_is_the_whole_history_newest_first(server):
    body = get(server, "/fng/?limit=0&format=json").json()
    data = body["data"]
    assert body["name"] == "Fear and Greed Index" and body["metadata"] == {"error": None}
    assert len(data) == (date(2026, 11, 23) - date(2018, 2, 1)).days + 1
    stamps = [int(entry["timestamp"]) for entry in data]
    assert stamps == sorted(stamps, reverse=True)
    assert datetime.fromtimestamp(stamps[-1], UTC).date() == date(2018, 2, 1)
    # the recorded day (the API's documented example) is served as recorded, over the model
    (documented,) = read_variant("fng_documented_example.json")["data"]
    assert [e for e in data if e["timestamp"] == "1551157200"] == [documented]
    modelled = [e for e in data if e != documented]
    assert all(int(entry["timestamp"]) % 86400 == 0 for entry in modelled)
    assert "time_until_update" in data[0]
    assert all("time_until_update" not in entry for entry in modelled[1:])
    assert all(isinstance(entry["value"], str) for entry in data)
    assert data[1]["value"] == str(server.dataset.fng(date(2026, 11, 22)))


def test_fng_defaults_to_one_entry_and_formats_dates(server):
    [entry] = get(server, "/fng/").json()["data"]
    assert entry["timestamp"] == str(int(datetime(2026, 11, 23, tzinfo=UTC).timestamp()))
    assert entry["time_until_update"] == str(12 * 3600)
    data = get(server, "/fng/?limit=2&date_format=world").json()["data"]
    assert [e["timestamp"] for e in data] == ["23-11-2026", "22-11-2026"]


def test_fng_reports_bad_parameters_in_metadata(server):
    body = get(server, "/fng/?limit=abc").json()
    assert body["data"] == [] and body["metadata"]["error"]


def test_fng_faults_fail_then_replace_the_body(server):
    server.faults.add(path="/fng/", status=503, times=1)
    server.faults.add(
        path="/fng/",
        body=b'{"name":"Fear and Greed Index","data":[],"metadata":{"error":"Bad params"}}',
        times=1,
    )
    assert get(server, "/fng/?limit=1").status_code == 503
    second = get(server, "/fng/?limit=1")
    assert second.status_code == 200 and second.json()["metadata"]["error"] == "Bad params"
    assert get(server, "/fng/?limit=1").json()["metadata"]["error"] is None


# ---------------------------------------------------------------- the server itself


def test_requests_are_recorded(server):
    post(
        server, NAV, {"isAllData": 0, "productId": 23, "fromDate": "20261120", "toDate": "20261120"}
    )
    get(server, MARKETS + "?vs_currency=usd&per_page=2&page=3")
    nav_request, markets_request = server.requests
    assert (nav_request.method, nav_request.path) == ("POST", NAV)
    assert nav_request.json()["productId"] == 23
    assert "chrome" in nav_request.headers["user-agent"].lower()
    assert markets_request.query == {"vs_currency": "usd", "per_page": "2", "page": "3"}
    assert server.requests_for(MARKETS) == [markets_request]


def test_concurrent_requests(server):
    def fetch(fund_id):
        body = {"isAllData": 1, "productId": fund_id, "fromDate": None, "toDate": "20261123"}
        return post(server, NAV, body).json()["data"]

    fund_ids = list(server.dataset.specs)[:16]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(fetch, fund_ids))
    for fund_id, rows in zip(fund_ids, results, strict=True):
        assert rows and rows[0]["navDate"] == server.dataset.spec(fund_id).inception.isoformat()


def test_env_points_every_worker_here(server):
    env = server.env()
    assert env["INGEST_COINGECKO_MARKETS__BASE_URL"] == server.url + "/api/v3"
    assert env["INGEST_FMARKET_NAV__BASE_URL"] == server.url
    from ingestion_pipelines.config.workers import catalogue

    # every scheduled worker of the project is served here (the `Source` classes and lyngsat):
    # none left out; tests register workers of their own (test_config's chain_test)
    scheduled = [
        w
        for w, spec in catalogue().items()
        if spec.kind == "scheduled" and spec.settings.__module__.startswith("ingestion_pipelines.")
    ]
    from ingestion_pipelines.replay.routes import SETTING_PATHS, SETTING_VALUES

    assert "INGEST_VN_INDICES__VIETCAP_BASE_URL" in SETTING_PATHS  # second providers' URLs
    # a declared replay's `settings`: the one fund / stock whose detail is recorded
    assert SETTING_VALUES == {
        "INGEST_FMARKET_FUND_HOLDINGS__FUND_IDS": "20",
        "INGEST_VN_COMPANY_PROFILES__TICKERS": "VCB",
    }
    base_urls = {f"INGEST_{w.upper()}__BASE_URL" for w in scheduled}
    assert set(env) == base_urls | set(SETTING_PATHS) | set(SETTING_VALUES)
    assert env["INGEST_FMARKET_FUND_HOLDINGS__FUND_IDS"] == "20"
    assert json.loads(json.dumps(env)) == env


# ---- behaviours of real servers, on request ------------------------------------------------


def test_a_page_cap_applies_its_own_size_whatever_page_size_asks(server):
    server.dataset.fmarket_page_cap = 5
    seen = []
    for page in range(1, 20):
        data = post(server, FILTER, {**FILTER_BODY, "page": page, "pageSize": 100}).json()["data"]
        assert data["total"] == 58 and len(data["rows"]) <= 5
        if not data["rows"]:
            break
        seen += [row["id"] for row in data["rows"]]
    assert page == 13 and len(seen) == len(set(seen)) == 58


def test_nav_history_can_over_return_days_before_from_date(server):
    fund_id = server.dataset.funds[0]["id"]
    body = {"isAllData": 0, "productId": fund_id, "fromDate": "20261116", "toDate": "20261120"}
    exact_days = {r["navDate"] for r in post(server, NAV, body).json()["data"]}
    server.dataset.nav_history_days_before = 7
    days = {r["navDate"] for r in post(server, NAV, body).json()["data"]}
    assert exact_days == {f"2026-11-{d:02}" for d in range(16, 21)}
    assert days - exact_days == {f"2026-11-{d:02}" for d in range(9, 14)}  # weekdays before


def test_fng_can_stamp_values_at_the_hour_of_the_documented_example(server):
    server.dataset.fng_stamp_hour = 5
    (entry,) = get(server, "/fng/").json()["data"]
    stamp = datetime.fromtimestamp(int(entry["timestamp"]), UTC)
    assert (stamp.date(), stamp.hour, stamp.minute) == (NOW.date(), 5, 0)


def test_the_command_line_sets_the_behaviours(monkeypatch):
    from ingestion_pipelines.replay import http_server

    seen = {}
    monkeypatch.setattr(http_server, "serve", lambda *a, **kw: seen.update(kw["behaviours"]))
    argv = ["--fmarket-page-cap", "5", "--nav-history-days-before", "3", "--fng-stamp-hour", "5"]
    assert http_server.main(argv) == 0
    assert seen == {"fmarket_page_cap": 5, "nav_history_days_before": 3, "fng_stamp_hour": 5}


def test_every_family_recording_ships_and_has_a_provenance_line():
    """Each family's (and each YAML source folder's) data/ is package data, and PROVENANCE.md
    says where each file comes from."""
    from importlib import resources

    from ingestion_pipelines.replay.routes import family_packages, read_data
    from ingestion_pipelines.storage.declared import DEFS_ROOT

    recordings = 0
    folders = [resources.files(package).joinpath("data") for package in family_packages()]
    folders += sorted(DEFS_ROOT.glob("*/data"))
    for data in folders:
        if not data.is_dir():
            continue
        provenance = data.joinpath("PROVENANCE.md").read_text(encoding="utf-8")
        for entry in data.iterdir():
            if entry.name != "PROVENANCE.md":
                assert f"- `{entry.name}`" in provenance, (data, entry.name)
                assert read_data(entry.name) == entry.read_bytes()
                recordings += 1
    # 11, the two captured LyngSat pages (issue 20), the depth, OKX and Bybit recordings (issue 21),
    # the binance_tickers (4) and coinpaprika_markets (3) payloads (issue 21), and the 6 of
    # vn_indices, vn_foreign_flows and vn_financial_ratios (its `latest` excerpt since staged
    # again: 5), the 5 of vn_gold_prices, the 2 of
    # vn_fx_rates, the 1 each of vn_index_members, vn_corporate_events and fmarket_fund_holdings,
    # the 3 of vn_financial_statements (issue 19), the 5 of binance_klines and the 5 of eth_gas
    # (issue 21), the 4 of crypto_news and the 6 of btc_chain (issue 21 §4); 67 on main by
    # 2026-12-06, vn_stock_eod's Vietcap recording (issue 19 §11), vn_company_profiles' (§3) and
    # the 2 Vietcap excerpts of vn_financial_statements (§11)
    assert recordings == 71


# ---------------------------------------------------------------- hostile requests (issue 22)


def _raw(server, head: bytes, body: bytes = b"", timeout: float = 5) -> tuple[int, bytes]:
    """One request over a raw socket: (status, whole answer)."""
    import socket

    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer) < answer.index(b"\r\n\r\n") + 4:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        sock.settimeout(1)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    return int(answer.split(b" ", 2)[1]), answer


@pytest.mark.parametrize("length", [b"-1", b"-100000", b"1e3", b"12, 12"])
def test_a_bad_content_length_is_a_400_at_once(server, length):
    """As found: `Content-Length: -1` read the socket until the client closed it."""
    head = b"POST " + FILTER.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: " + length
    status, answer = _raw(server, head + b"\r\n\r\n", b'{"page": 1}')
    assert status == 400, answer
    assert b"Content-Length" in answer and b"Traceback" not in answer


def test_a_body_over_the_bound_is_a_413_unread(server):
    from ingestion_pipelines.replay.http_server import MAX_BODY_BYTES

    head = f"POST {FILTER} HTTP/1.1\r\nHost: x\r\nContent-Length: {10**12}\r\n\r\n".encode()
    status, answer = _raw(server, head, b"{")
    assert status == 413 and b"Traceback" not in answer
    chunked = f"POST {FILTER} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    big = (b"%x\r\n" % 65536 + b"x" * 65536 + b"\r\n") * (MAX_BODY_BYTES // 65536 + 2)
    status, answer = _raw(server, chunked, big)
    assert status == 413 and b"Traceback" not in answer
    status, answer = _raw(server, chunked, b"zz\r\n")
    assert status == 400 and b"chunk size" in answer
    assert post(server, FILTER, FILTER_BODY).status_code == 200  # and it serves on


def test_a_failing_handler_answers_500_without_its_traceback(server, capsys):
    """As found: the 500's body was the Python traceback (paths, code, values)."""
    from ingestion_pipelines.replay import routes

    def broken(request, dataset):
        raise RuntimeError("secret internals at /srv/app.py")

    routes.ROUTES["/broken-for-test"] = {"GET": broken}
    try:
        status, headers, body = plain_get(server.url + "/broken-for-test")
    finally:
        del routes.ROUTES["/broken-for-test"]
    assert status == 500
    assert b"Traceback" not in body and b"secret internals" not in body
    assert b"RuntimeError" in body
    assert "secret internals" in capsys.readouterr().err  # the server's own log keeps it
