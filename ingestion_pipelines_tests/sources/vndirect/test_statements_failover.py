"""vn_financial_statements' two providers against the replay at their real paths: with VNDIRECT
answering 403 the run completes from Vietcap (one extra request for the whole run, the provider
on every row and in the run's metadata, values in the same unit: full VND); with both healthy
VNDIRECT serves every stock; a Vietcap answer's unknown keys land in `extra`."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import orjson
import pytest
from sqlalchemy import select

from ingestion_pipelines.http_client.session import CrawlSession
from ingestion_pipelines.replay.http_server import ReplayServer
from ingestion_pipelines.resources.rate_limit import LocalRateLimiter
from ingestion_pipelines.sources.declared import declared_sources
from ingestion_pipelines.sources.runner import crawl
from ingestion_pipelines.sources.vndirect import replay_statements as replay
from ingestion_pipelines.sources.vndirect.replay import VIETCAP_PREFIX
from ingestion_pipelines.sources.vndirect.statements_vietcap import (
    VietcapItem,
    metric_names,
    vietcap_rows,
)
from ingestion_pipelines.storage import tables
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema
from ingestion_pipelines_tests.sources.vndirect.test_financial_statements import (
    grown,
    seed_stocks,
)

WORKER = "vn_financial_statements"
VIETCAP_TCB = VIETCAP_PREFIX + replay.VIETCAP_PATH.format(symbol="TCB")


@pytest.fixture
def server():
    with ReplayServer() as running:
        yield running
    dispose_all()


def run(url: str, server: ReplayServer):
    """One run of the declared worker, both providers pointed at the replay."""
    cls = declared_sources()[WORKER]
    settings = cls.Settings(
        base_url=server.url,
        vietcap_base_url=server.url + VIETCAP_PREFIX,
        database_url=url,
        concurrency=4,
    )
    session = CrawlSession(
        WORKER, rate_limiter=LocalRateLimiter(), impersonate=None, timeout_s=5,
        backoff_base_s=0.01, backoff_max_s=0.02,
    )  # fmt: skip
    engine = ensure_schema(url)
    return crawl(cls(settings), session=session, data_engine=engine, control_engine=engine)


def rows(url: str) -> list[dict]:
    with ensure_schema(url).connect() as conn:
        return [dict(r) for r in conn.execute(select(tables.financial_statement)).mappings()]


def test_with_vndirect_blocked_the_run_completes_from_vietcap_in_the_same_unit(
    server, sqlite_url, tmp_path
):
    codes = grown(server, 2, years=2, items=2)
    seed_stocks(sqlite_url, ["TCB", *codes])
    server.dataset.statement_book.blocked.add("vndirect")

    result = run(sqlite_url, server)

    assert len(server.requests_for(replay.MODELS_PATH)) == 1  # the one extra request
    assert server.requests_for(replay.STATEMENTS_PATH) == []
    asked_vietcap = [r for r in server.requests if r.path.startswith(VIETCAP_PREFIX)]
    assert len(asked_vietcap) == 3 * (1 + 3)  # 3 stocks × (their metrics + 3 sections)
    assert VIETCAP_TCB in {r.path for r in asked_vietcap}
    providers = result.metadata()
    assert providers["partitions_by_provider"] == {"vietcap": 3}
    assert providers["first_failovers"][0]["from"] == "vndirect"
    assert providers["provider_health"]["vndirect"]["blocked_status"] == 403
    stored = rows(sqlite_url)
    assert {r["provider"] for r in stored} == {"vietcap"}
    assert result.written.inserted == len(stored) == 2 + 2 * (2 * 4 + 2) * 2 * 3
    tcb = {r["item_code"]: r for r in stored if r["symbol"] == "TCB"}
    assert set(tcb) == {"isa16", "isb25"}  # the recording's one year; its quarter holds no item
    pbt = tcb["isa16"]
    assert pbt["value"] == Decimal("10661016000000")  # full VND, exact
    assert (pbt["statement"], pbt["period_type"], pbt["fiscal_year"], pbt["fiscal_quarter"]) == (
        "income",
        "year",
        2018,
        0,
    )
    assert pbt["fiscal_date"] == date(2018, 12, 31)
    assert pbt["extra"]["fiscal_date_inferred"] is True
    assert pbt["extra"]["publicDate"] == "2019-03-25T00:00:00"
    assert pbt["item_name_vi"] is None  # the recorded chart does not name isa16
    named = next(r for r in stored if r["symbol"] == codes[0] and r["item_code"] == "cfa2")
    assert (named["item_name_vi"], named["item_name_en"]) == ("Khoản mục cfa2", "Item cfa2")

    # both healthy (a fresh deployment): VNDIRECT serves every stock, Vietcap is not asked
    server.dataset.statement_book.blocked.clear()
    server.requests.clear()
    healthy = f"sqlite:///{tmp_path / 'healthy.db'}"
    seed_stocks(healthy, ["TCB", *codes])
    second = run(healthy, server)
    assert second.metadata()["partitions_by_provider"] == {"vndirect": 3}
    assert [r for r in server.requests if r.path.startswith(VIETCAP_PREFIX)] == []
    vndirect = {
        (r["symbol"], r["statement"], r["fiscal_year"], r["fiscal_quarter"], r["item_code"]): r
        for r in rows(healthy)
    }
    assert {r[0] for r in vndirect} == set(codes) and {
        r["provider"] for r in vndirect.values()
    } == {"vndirect"}
    # the same figure from each provider lands as the same exact decimal (VND)
    vietcap = {
        (r["symbol"], r["statement"], r["fiscal_year"], r["fiscal_quarter"], r["item_code"]): r
        for r in stored
    }
    for n in range(2):
        for quarter in (0, 1, 4):
            ours = vndirect[(codes[0], "income", 2025, quarter, str(200200 + n))]["value"]
            theirs = vietcap[(codes[0], "income", 2025, quarter, f"isa{n + 1}")]["value"]
            assert ours == theirs and ours == int(ours)


def test_a_stock_whose_families_fail_is_asked_of_vietcap_alone(server, sqlite_url):
    codes = grown(server, 2, years=1, items=1)
    seed_stocks(sqlite_url, codes)
    server.dataset.statement_book.blocked.add(f"vndirect:{codes[0]}")
    result = run(sqlite_url, server)
    meta = result.metadata()
    assert meta["partitions_by_provider"] == {"vndirect": 1, "vietcap": 1}
    assert meta["failovers"] == 1  # its other families' 403s move nothing again
    by_symbol = {(r["symbol"], r["provider"]) for r in rows(sqlite_url)}
    assert by_symbol == {(codes[0], "vietcap"), (codes[1], "vndirect")}


def vietcap(body: dict, section: str = "INCOME_STATEMENT", names: dict | None = None):
    request = SimpleNamespace(meta={"symbol": "TCB", "section": section})
    skipped: Counter[str] = Counter()
    response = SimpleNamespace(content=orjson.dumps(body))
    return list(vietcap_rows(response, request, skipped, names)), skipped


def test_vietcap_periods_of_other_lengths_are_skipped_and_unknown_keys_kept():
    periods = {
        "years": [{"yearReport": 2024, "lengthReport": 5, "isa3": 5.0, "ebitda": 7.0}],
        "quarters": [
            {"yearReport": 2025, "lengthReport": 2, "bsI141": 1.5, "isa20": None},
            {"yearReport": 2025, "lengthReport": 6, "isa3": 9.0},  # a half year
        ],
    }
    chart = {
        "data": {"BALANCE_SHEET": [{"field": "bsi141", "titleVi": "Tài sản", "titleEn": None}]}
    }
    names = metric_names(SimpleNamespace(content=orjson.dumps(chart)))
    found, skipped = vietcap({"data": periods}, names=names)
    assert (found[1]["item_name_vi"], found[0]["item_name_vi"]) == ("Tài sản", None)
    assert skipped == {"quarters lengthReport 6": 1}
    assert [(r["item_code"], r["fiscal_quarter"]) for r in found] == [("isa3", 0), ("bsi141", 2)]
    row = VietcapItem.model_validate(found[0]).row()
    assert row["value"] == Decimal("5.0") and "ebitda" in row["extra"]
    assert VietcapItem.model_validate(found[1]).row()["fiscal_date"] == date(2025, 6, 30)


def test_a_vietcap_body_without_data_fails_naming_it():
    from ingestion_pipelines.sources.base import SourceError

    with pytest.raises(SourceError, match="no data object"):
        vietcap({"successful": False, "msg": "Unauthorized"})
