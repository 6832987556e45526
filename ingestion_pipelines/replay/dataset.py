"""Everything the replay server serves, in one object tests can read and change.

    dataset = ReplayDataset(now=datetime(2026, 11, 23, 11, 0, tzinfo=timezone.utc))
    dataset.nav(23, date(2026, 11, 20))        # the NAV get-nav-history serves for that day
    dataset.funds[0]["nav"] = "n/a"            # a malformed row in the fund list
    dataset.nav_overrides[(23, date(2026, 11, 20))] = {"nav": None}  # a malformed NAV row
    dataset.coins = dataset.coins[:5]          # a different set of coins
    dataset.set_feed("/rss/kinh-doanh.rss", "<rss ...>")
    dataset.fng_overrides[date(2026, 11, 22)] = None  # a missing index day

The dataset is shared by the server's threads; change it between requests, not during one.
"""

from __future__ import annotations

import copy
import json
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ingestion_pipelines.replay import routes
from ingestion_pipelines.replay.routes import read_data, read_variant
from ingestion_pipelines.sources.fear_greed import replay as fear_greed
from ingestion_pipelines.sources.fmarket import replay as fmarket
from ingestion_pipelines.sources.news.replay import CAFEF_PATH, VNEXPRESS_PATH, Feed

__all__ = ["CAFEF_PATH", "VNEXPRESS_PATH", "ReplayDataset", "read_data", "read_variant"]


class ReplayDataset:
    """The recorded and generated data of every HTTP source the replay server speaks."""

    def __init__(self, *, now: datetime | None = None) -> None:
        self.fixed_now = now  # None: the real clock
        self.products: list[dict[str, Any]] = json.loads(read_data("fmarket_products.json"))
        self.specs = {row["id"]: fmarket.FundSpec.from_row(row) for row in self.products}
        self.nav_overrides: dict[tuple[int, date], dict[str, Any] | None] = {}
        self.fng_overrides: dict[date, int | None] = {}
        routes.load_replays()
        for name, build in routes.DATASET_PARTS.items():  # each family's served state
            setattr(self, name, build())
        # Behaviours of real servers, off by default (see `ingest replay --help`):
        self.fmarket_page_cap: int | None = None  # page size applied whatever pageSize asks
        self.nav_history_days_before = 0  # get-nav-history also returns this many earlier days
        self.fng_stamp_hour = 0  # alternative.me's documented example stamps at 05:00 UTC
        self._funds: list[dict[str, Any]] | None = None
        self._funds_state: tuple[date | None, ...] = ()
        self._funds_fixed = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ clock

    def now(self) -> datetime:
        """The dataset's clock: the fixed time if set, else now (UTC)."""
        return self.fixed_now or datetime.now(UTC)

    def today_ict(self) -> date:
        """Today's date in Vietnam (ICT)."""
        return self.now().astimezone(fmarket.ICT).date()

    # ------------------------------------------------------------------ fmarket

    @property
    def funds(self) -> list[dict[str, Any]]:
        """The rows /res/products/filter pages through, NAV fields as of the newest published NAV.

        Rebuilt when a new NAV is published (so a test's edits hold within a test), unless a
        test assigned its own list."""
        with self._lock:
            state = tuple(self.latest_nav_date(fund_id) for fund_id in self.specs)
            if self._funds is None or (not self._funds_fixed and self._funds_state != state):
                self._funds = [
                    self._product_row(row, latest)
                    for row, latest in zip(self.products, state, strict=True)
                ]
                self._funds_state = state
            return self._funds

    @funds.setter
    def funds(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self._funds, self._funds_fixed = rows, True

    def _product_row(self, template: dict[str, Any], latest: date | None) -> dict[str, Any]:
        row = copy.deepcopy(template)
        if latest is not None:
            row.update(fmarket.nav_fields(self.specs[row["id"]], latest))
        return row

    def fund(self, fund_id: int) -> dict[str, Any] | None:
        """The fund list row of `fund_id` (None: not listed)."""
        return next((row for row in self.funds if row.get("id") == fund_id), None)

    def spec(self, fund_id: int) -> fmarket.FundSpec | None:
        """The NAV model of `fund_id` (None: unknown fund)."""
        return self.specs.get(fund_id)

    def latest_nav_date(self, fund_id: int) -> date | None:
        """The newest NAV date published by now: fmarket stores a day's NAV at 17:00-18:30 ICT."""
        spec = self.specs.get(fund_id)
        if spec is None:
            return None
        now_ms = self.now().timestamp() * 1000
        day = fmarket.previous_weekday(self.today_ict())
        while (published := spec.published_at_ms(day)) is not None and published > now_ms:
            day = fmarket.previous_weekday(day - timedelta(days=1))
        return day if day >= spec.inception else None

    def nav(self, fund_id: int, day: date) -> float | None:
        """The NAV get-nav-history serves for (fund, day), None when it serves no row."""
        rows = self.nav_rows(fund_id, day, day)
        return rows[0]["nav"] if rows else None

    def nav_rows(self, fund_id: int, start: date | None, end: date) -> list[dict[str, Any]]:
        """The rows of get-nav-history for [start, end] (start None: from inception)."""
        spec = self.specs.get(fund_id)
        latest = self.latest_nav_date(fund_id)
        if spec is None or latest is None:
            return []
        day = max(start or spec.inception, spec.inception)
        end = min(end, latest)
        rows = []
        overrides = self.nav_overrides
        while day <= end:
            value = spec.nav(day)
            if value is not None:
                row = fmarket.nav_row(spec, day, value)
                if overrides and (fund_id, day) in overrides:
                    change = overrides[(fund_id, day)]
                    row = None if change is None else {**row, **change}
                if row is not None:
                    rows.append(row)
            day += timedelta(days=1)
        return rows

    # ------------------------------------------------------------------ RSS

    def set_feed(self, path: str, document: str | bytes, *, browser_only: bool = False) -> Feed:
        """Serve ``document`` at ``path`` (replacing the recording there, if any)."""
        self.feeds[path] = feed = Feed(document, browser_only=browser_only)
        return feed

    # ------------------------------------------------------------------ Fear & Greed

    def fng(self, day: date) -> int | None:
        """The index value /fng/ serves for a UTC day (None: no entry that day)."""
        if day in self.fng_overrides:
            return self.fng_overrides[day]
        if day < fear_greed.FIRST_DAY or day > self.now().astimezone(UTC).date():
            return None
        return fear_greed.value_for(day)
