"""NAV values travel from the response's JSON text to the database as exact decimals: no value
passes through a float on the way (parse, validation, row, upsert)."""

from datetime import date
from decimal import Decimal

from sqlalchemy import select

from ingestion_pipelines.http_client.results import HttpResult
from ingestion_pipelines.sources.base import Request, source_classes
from ingestion_pipelines.sources.fmarket.nav import FundNav
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import fund_nav
from ingestion_pipelines.storage.upsert import upsert

# Texts a float would change: 0.1 + 0.2 style values, 17 significant digits, 18 decimals.
NAVS = ["0.1", "0.2", "0.30000000000000004", "12345.678901234567", "1.000000000000000001"]


def history_response(navs: list[str]) -> HttpResult:
    rows = ",".join(
        f'{{"id":{i},"createdAt":1700000000000,"nav":{nav},"navDate":"2026-11-{i + 10}",'
        f'"productId":23}}'
        for i, nav in enumerate(navs)
    )
    body = f'{{"status":200,"code":200,"message":"ok","data":[{rows}]}}'.encode()
    return HttpResult(200, {}, body, "http://fmarket.test/res/product/get-nav-history", 0.0)


def test_nav_values_are_stored_exactly_as_sent(database_url):
    request = Request("/res/product/get-nav-history", method="POST", meta={"kind": "nav"})
    items = list(source_classes()["fmarket_nav"](None).parse(history_response(NAVS), request))
    rows = [FundNav.model_validate(item).row() for item in items]  # as the runner does
    assert [row["nav"] for row in rows] == [Decimal(nav) for nav in NAVS]
    assert all(type(row["nav"]) is Decimal for row in rows)

    engine = ensure_schema(database_url)
    upsert(engine, fund_nav, rows)
    with engine.connect() as conn:
        stored = conn.execute(select(fund_nav.c.nav_date, fund_nav.c.nav)).all()
    assert {day: nav for day, nav in stored} == {
        date(2026, 11, i + 10): Decimal(nav) for i, nav in enumerate(NAVS)
    }
