"""Every record model against every bundled payload variant (each family's data/PROVENANCE.md): each
value lands exactly, typed or verbatim in `extra`, and nothing real is rejected."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from ingestion_pipelines.replay.dataset import ReplayDataset, read_data, read_variant
from ingestion_pipelines.sources.base import (
    Request,
    Window,
    path_tree,
    source_classes,
    unmapped,
)
from ingestion_pipelines.sources.fmarket.nav import FundNav
from ingestion_pipelines.sources.news.rss import Article

NOW = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)


@dataclass
class Body:
    """What `parse` reads of a response."""

    content: bytes

    def json(self):
        return json.loads(self.content)


def exact(payload) -> object:
    """A payload as the sources decode it: numbers with a fraction as exact decimals."""
    return json.loads(json.dumps(payload), parse_float=Decimal)


def millis(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def dec(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


# ---- fmarket ----------------------------------------------------------------------------


def fund_record():
    """The record model of the fund list, declared in its defs.yaml."""
    return next(s for s in source_classes().values() if s.table.name == "fund").record


def _before_any_nav(row: dict) -> dict:
    """A fund row as fmarket sends it for a fund just listed: no NAV figures yet."""
    return {**row, "nav": None, "lastYearNav": None, "productNavChange": None, "extra": None}


def test_every_fmarket_fund_row_keeps_every_field_typed_or_in_extra():
    dataset = ReplayDataset(now=NOW)
    # rows with their NAV figures, and as sent before any NAV (a fund just listed)
    funds = exact(dataset.funds + [_before_any_nav(row) for row in dataset.funds])
    assert len(funds) == 116 and any(f["productNavChange"] is None for f in funds)
    Fund = fund_record()
    for raw in funds:
        row = Fund.model_validate(raw).row()
        change = raw["productNavChange"] or {}
        assert row["nav_updated_at"] == millis((raw["extra"] or {}).get("lastNAVDate"))
        assert row["figures_updated_at"] == millis(change.get("updateAt"))
        assert row["return_1m"] == change.get("navTo1Months")
        assert row["return_36m"] == change.get("navTo36Months")
        assert row["return_since_inception"] == change.get("navToBeginning")
        assert row["return_to_last_year"] == change.get("navToLastYear")
        assert row["management_fee"] == dec(raw["managementFee"])
        assert row["risk_level"] == (raw["riskLevel"] or {}).get("name")
        assert row["fund_type"] == (raw["fundType"] or {}).get("name")
        assert row["trading_session_at"] == millis(raw["productTradingSession"]["tradingTime"])
        extra = row["extra"]
        # What has no column is there verbatim, exact decimals as text ...
        assert extra["productFeeList"] == json.loads(json.dumps(raw["productFeeList"], default=str))
        assert extra["holdingVolume"] == str(raw["holdingVolume"])
        assert extra["owner"]["email"] == raw["owner"]["email"]  # owner.name is `issuer`
        assert "name" not in extra["owner"] and "code" not in extra
        if change:
            assert extra["productNavChange"]["navTo24Months"] == _text(change["navTo24Months"])
            assert "updateAt" not in extra["productNavChange"]
            assert extra["extra"]["currentNAV"] == _text(raw["extra"]["currentNAV"])
        else:
            assert "productNavChange" not in extra


def _text(value):
    return None if value is None else str(value)


def test_the_nav_row_is_for_the_navs_own_day_not_the_day_fmarket_recomputed_returns():
    dataset = ReplayDataset(now=NOW)
    raw = exact(next(f for f in dataset.funds if f["productNavChange"]))
    row = fund_record().model_validate(raw).row()
    latest = date(2026, 12, 4)  # the recording's NAV day (its PROVENANCE)
    assert row["nav_updated_at"] == datetime(latest.year, latest.month, latest.day).replace(
        tzinfo=UTC
    ) - timedelta(hours=7)
    assert row["figures_updated_at"] > row["nav_updated_at"]


def test_fmarket_nav_rows_keep_their_ids_and_stamps_in_extra():
    dataset = ReplayDataset(now=NOW)
    fund_id = next(iter(dataset.specs))
    for raw in exact(dataset.nav_rows(fund_id, date(2026, 11, 2), date(2026, 11, 20))):
        row = FundNav.model_validate(raw).row()
        assert row["nav"] == raw["nav"] and row["nav_date"].isoformat() == raw["navDate"]
        assert row["extra"] == {k: raw[k] for k in ("id", "createdAt", "updatedAt")}


# ---- CoinGecko --------------------------------------------------------------------------

COINGECKO_VARIANTS = ["coingecko_coins_markets.json", "coingecko_stale_coin.json"]
# Declared in defs/coingecko_markets/defs.yaml: its class and record model, as the catalogue made them.
CoingeckoMarkets = source_classes()["coingecko_markets"]
MarketSnapshot = CoingeckoMarkets.record
TYPED = {
    "high_24h": "high_24h",
    "low_24h": "low_24h",
    "price_change_24h": "price_change_24h",
    "market_cap_change_24h": "market_cap_change_24h",
    "market_cap_change_percentage_24h": "market_cap_change_pct_24h",
    "fully_diluted_valuation": "fully_diluted_valuation",
    "ath": "ath",
    "ath_change_percentage": "ath_change_pct",
    "atl": "atl",
    "atl_change_percentage": "atl_change_pct",
    "total_supply": "total_supply",
    "max_supply": "max_supply",
    "current_price": "price_usd",
}


def _utc(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("variant", COINGECKO_VARIANTS)
def test_every_coin_is_stored_with_every_field_and_one_capture_time_per_run(variant):
    source = CoingeckoMarkets(CoingeckoMarkets.Settings())
    request = next(iter(source.build_requests()))
    coins = read_variant(variant)
    items = [i for i in source.parse(Body(read_data(variant)), request) if isinstance(i, dict)]
    rows = [MarketSnapshot.model_validate(item).row() for item in items]
    assert len(rows) == len(coins)
    assert {r["captured_at"] for r in rows} == {source.started_at}
    for coin, row in zip(exact(coins), rows, strict=True):
        for field, column in TYPED.items():
            assert row[column] == (dec(coin[field]) if coin[field] is not None else None), field
        assert row["ath_date"] == _utc(coin["ath_date"]) and row["atl_date"] == _utc(
            coin["atl_date"]
        )
        assert row["last_updated"] == _utc(coin["last_updated"])
        assert row["extra"]["image"] == coin["image"]
        assert row["extra"].get("roi") == json.loads(json.dumps(coin["roi"], default=str))


def test_a_stale_coin_with_last_updated_null_is_stored():
    stale = MarketSnapshot.model_validate(
        {**exact(read_variant("coingecko_stale_coin.json")[1]), "captured_at": NOW}
    ).row()
    assert stale["last_updated"] is None and stale["captured_at"] == NOW
    assert stale["high_24h"] is None and stale["market_cap_usd"] == 0


# ---- alternative.me -----------------------------------------------------------------------


def fear_greed():
    """The Fear & Greed source, declared in its defs.yaml."""
    return source_classes()["fear_greed"]


def test_the_documented_example_stamped_at_five_utc_is_its_utc_day():
    (item,) = read_variant("fng_documented_example.json")["data"]
    row = fear_greed().record.model_validate(item).row()
    assert row == {
        "index_date": date(2019, 2, 26),
        "value": 40,
        "classification": "Fear",
        "extra": {"time_until_update": "68499"},
    }


def utc_window(first: date, last: date) -> Window:
    """The window of UTC days `first`..`last`."""
    return Window(first, last + timedelta(days=1), "UTC")


@pytest.mark.parametrize("hour", [0, 5, 23])
def test_fear_greed_values_at_any_hour_of_the_day_keep_their_utc_day(hour):
    from ingestion_pipelines.replay import fng

    body = fng.index({"limit": "10"}, NOW, fng.value_for, stamp_hour=hour)
    source_class = fear_greed()
    window = utc_window(NOW.date() - timedelta(days=9), NOW.date())
    source = source_class(source_class.Settings(), window=window)
    items = list(source.parse(Body(json.dumps(body).encode()), Request("/fng/")))
    days = [source_class.record.model_validate(i).row()["index_date"] for i in items]
    assert days == [NOW.date() - timedelta(days=n) for n in range(10)]


def test_fear_greed_drops_the_days_outside_its_window_before_validation():
    from ingestion_pipelines.replay import fng

    body = fng.index({"limit": "0"}, NOW, fng.value_for)  # the whole history, as for a backfill
    body["data"].append({"value": "1", "value_classification": "x", "timestamp": "x"})
    source_class = fear_greed()
    day = NOW.date() - timedelta(days=400)
    source = source_class(source_class.Settings(), window=utc_window(day, day))
    items = list(source.parse(Body(json.dumps(body).encode()), Request("/fng/")))
    assert len(body["data"]) > 3000
    assert [i["timestamp"] for i in items] == [str(fng.utc_midnight(day)), "x"]


def test_an_unreadable_stamp_is_rejected_with_its_field():
    record = fear_greed().record
    with pytest.raises(ValueError, match="index_date|timestamp"):
        record.model_validate({"value": "1", "value_classification": "x", "timestamp": "x"})
    with pytest.raises(ValueError, match="out of range"):
        record.model_validate({"value": "1", "value_classification": "x", "timestamp": "9" * 30})


# ---- RSS ----------------------------------------------------------------------------------

RSS_VARIANTS = [
    "vnexpress_kinh_doanh.rss",
    "cafef_thi_truong_chung_khoan.rss",
    "rss_guid_categories.rss",
]


@pytest.mark.parametrize("variant", RSS_VARIANTS)
def test_every_rss_item_is_an_article_with_its_guid_and_categories(variant):
    news = source_classes()["vnexpress_news"]  # declared, the RSS hook its code
    source = news(news.Settings())
    items = list(source.parse(Body(read_data(variant)), Request("/feed.rss")))
    rows = [Article.model_validate(item).row() for item in items]
    assert rows and all(r["guid"] for r in rows)
    assert all(r["extra"]["description_html"] and r["extra"]["pub_date"] for r in rows)
    if variant == "rss_guid_categories.rss":
        (row,) = rows
        assert row["guid"] == "188261124093012345"
        assert row["categories"] == ["Thị trường chứng khoán", "Vĩ mô - Đầu tư"]
        assert row["extra"]["author"] == "toasoan@cafef.vn (Minh Anh)"
        assert row["extra"]["comments"].endswith("#comments")
    if variant == "vnexpress_kinh_doanh.rss":
        enclosures = [r["extra"]["enclosures"][0] for r in rows if "enclosures" in r["extra"]]
        assert len(enclosures) == 17 and all(e["type"] == "image/jpeg" for e in enclosures)


# ---- the generic mechanism ---------------------------------------------------------------


def test_unmapped_removes_read_leaves_and_keeps_siblings_verbatim():
    raw = {"a": 1, "b": {"c": Decimal("0.10"), "d": 2}, "e": None, "f": {"g": 1}, "h": [1.5]}
    read = path_tree([("a",), ("b", "d"), ("e", "x"), ("f", "g")])
    assert unmapped(raw, read) == {"b": {"c": "0.10"}, "h": [1.5]}
    assert unmapped({"a": 1}, path_tree([("a",)])) is None
    assert path_tree([("a",), ("a", "b")]) == path_tree([("a", "b"), ("a",)]) == {"a": None}


# ---- rules of a declaration ---------------------------------------------------------------


def test_a_declared_order_rejects_a_record_with_its_reason_and_skips_empty_columns():
    from ingestion_pipelines.sources.declared_models import record_model
    from ingestion_pipelines.sources.declared_spec import RestSourceSpec

    spec = RestSourceSpec.model_validate(
        {
            "worker_id": "ordered_example",
            "request": {"path": "/prices"},
            "table": {
                "name": "ordered_example",
                "columns": {
                    "code": "string(16) key",
                    "low": "decimal required",
                    "open": "decimal",
                    "high": "decimal required",
                },
            },
            "ordered": [["low", "open", "high"]],
        }
    )
    model = record_model(spec, "OrderedExample")
    assert model.model_validate({"code": "VNM", "low": "9.5", "high": "10"}).row()["open"] is None
    assert model.model_validate({"code": "VNM", "low": "9.5", "open": "10", "high": "10"})
    with pytest.raises(ValueError, match=r"low <= open <= high does not hold: open 10.5 > high 10"):
        model.model_validate({"code": "VNM", "low": "9.5", "open": "10.5", "high": "10"})
    unknown = spec.model_copy(update={"ordered": [["low", "close"]]})
    with pytest.raises(ValueError, match=r"unknown columns \['close'\]"):
        record_model(unknown, "Unknown")
