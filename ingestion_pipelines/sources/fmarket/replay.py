"""fmarket.vn's NAV history (`POST /res/product/get-nav-history`), for every worker declared with
the NAV hook (sources/fmarket/nav.py).

The fund list (`POST /res/products/filter`) is the recording of its YAML source
(the ``defs/`` folder whose replay answers there), served by the declared replay; its funds are the ones modelled here.
Every NAV history row is computed from a closed-form model: a NAV is a pure function of
(fund, date), so tests can compute the expected value and any range is cheap to serve (the
recorded fund list's NAV fields were computed by this model as of 2026-12-04, see its PROVENANCE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ingestion_pipelines.core.timezones import ICT
from ingestion_pipelines.replay.determinism import unit_hash
from ingestion_pipelines.replay.routes import (
    ReplayRequest,
    Response,
    dataset_part,
    error_answer,
    route,
)
from ingestion_pipelines.sources.declared_family import serve_hooked
from ingestion_pipelines.sources.declared_recorded import recorded_at
from ingestion_pipelines.sources.fmarket.nav import NavHistory

if TYPE_CHECKING:
    from ingestion_pipelines.replay.dataset import ReplayDataset

FUND_LIST = "/res/products/filter"  # the fund list, replayed from its YAML source's recording
PAR_VALUE = 10_000.0  # every fund starts at 10,000 VND per unit
EPOCH = date(2000, 1, 1)
_UNIX_DAY = date(1970, 1, 1).toordinal()

# asset type -> (yearly drift range, amplitudes of the 4-year / 1-year / quarter cycles, daily noise)
_STYLE = {
    "STOCK": ((0.07, 0.14), (0.16, 0.07, 0.03), 0.004),
    "BALANCED": ((0.06, 0.10), (0.08, 0.035, 0.012), 0.002),
    "BOND": ((0.045, 0.07), (0.006, 0.003, 0.001), 0.0002),
}
_PERIODS = (4.0, 1.0, 0.25)  # years


@dataclass(frozen=True)
class FundSpec:
    """What the NAV model needs to know about a fund."""

    fund_id: int
    asset_code: str  # STOCK / BOND / BALANCED
    inception: date  # first NAV date (ICT), NAV = 10,000 that day
    listed: date  # when the fund appeared on fmarket (rows before it have no createdAt)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> FundSpec:
        """The model's view of one fund list row."""
        asset = row["dataFundAssetType"]["code"]
        return cls(
            fund_id=int(row["id"]),
            asset_code=asset if asset in _STYLE else "BALANCED",
            inception=ms_to_ict_date(row["firstIssueAt"]),
            listed=ms_to_ict_date(row.get("approveAt") or row["firstIssueAt"]),
        )

    @cached_property
    def _curve(self) -> tuple[float, tuple[tuple[float, float, float], ...], float]:
        """(yearly drift, (amplitude, angular frequency, phase) per cycle, daily noise)."""
        (low, high), amps, noise = _STYLE[self.asset_code]
        fid = self.fund_id
        cycles = tuple(
            (
                amp * (0.6 + 0.8 * unit_hash(fid, 20 + k)),
                2 * math.pi / period,
                2 * math.pi * unit_hash(fid, 10 + k),
            )
            for k, (amp, period) in enumerate(zip(amps, _PERIODS, strict=True))
        )
        return low + (high - low) * unit_hash(fid, 1), cycles, noise

    def nav(self, day: date) -> float | None:
        """The NAV per unit on ``day``, or None when there is none (weekend, before inception)."""
        if day < self.inception or day.weekday() >= 5:
            return None
        drift, cycles, noise = self._curve
        t = (day - self.inception).days / 365.25
        x = drift * t
        for amp, omega, phase in cycles:
            x += amp * (math.sin(omega * t + phase) - math.sin(phase))
        if t > 0:
            x += noise * (2 * unit_hash(self.fund_id, day.toordinal()) - 1)
        return round(PAR_VALUE * math.exp(x), 2)

    def published_at_ms(self, day: date) -> int | None:
        """When fmarket stored the NAV of ``day`` (epoch ms), None for rows imported at listing.

        17:00 ICT that day plus up to 90 minutes."""
        if day < self.listed:
            return None
        jitter = int(unit_hash(self.fund_id, -day.toordinal()) * 5_400_000)
        return (day.toordinal() - _UNIX_DAY) * 86_400_000 + 10 * 3_600_000 + jitter

    def row_id(self, day: date) -> int:
        """The id of the fund's NAV row on `day` (stable, unique)."""
        return self.fund_id * 100_000 + (day - EPOCH).days


def ms_to_ict_date(value: int | float) -> date:
    """The ICT calendar date of an epoch-milliseconds stamp."""
    return datetime.fromtimestamp(value / 1000, ICT).date()


def previous_weekday(day: date) -> date:
    """`day` if it is a weekday, else the Friday before."""
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def nav_row(spec: FundSpec, day: date, nav: float) -> dict[str, Any]:
    """One row of get-nav-history, in the order the real API writes its fields."""
    created = spec.published_at_ms(day)
    return {
        "id": spec.row_id(day),
        "createdAt": created,
        "updatedAt": created,
        "nav": nav,
        "navDate": day.isoformat(),
        "productId": spec.fund_id,
    }


# ---------------------------------------------------------------- request handling


def envelope(data: Any, *, status: int = 200, message: str = "Thành công", target=None) -> dict:
    """fmarket's response envelope (errors use the same one, with ``data`` null)."""
    return {
        "status": status,
        "code": status,
        "time": int(datetime.now(UTC).timestamp() * 1000),
        "message": message,
        "target": target,
        "data": data,
    }


class BadRequest(ValueError):
    """A request fmarket answers with HTTP 400; ``target`` names the offending field."""

    def __init__(self, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.target = target


def parse_request_date(body: dict[str, Any], name: str, *, required: bool) -> date | None:
    """``YYYYMMDD`` (what fmarket's site sends; ``YYYY-MM-DD`` is accepted too)."""
    value = body.get(name)
    if value in (None, ""):
        if required:
            raise BadRequest(f"{name} không được để trống", name)
        return None
    text = str(value)
    for fmt in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise BadRequest(f"{name} không đúng định dạng yyyyMMdd", name)


def history_window(body: dict[str, Any]) -> tuple[int, date | None, date, bool]:
    """Validate a get-nav-history body: (productId, from, to, isAllData)."""
    try:
        product_id = int(body.get("productId"))
    except (TypeError, ValueError):
        raise BadRequest("productId không hợp lệ", "productId") from None
    all_data = str(body.get("isAllData", 0)).lower() in ("1", "true")
    to_day = parse_request_date(body, "toDate", required=True)
    from_day = parse_request_date(body, "fromDate", required=not all_data)
    return product_id, from_day, to_day, all_data


# ---------------------------------------------------------------- served state


class FundBook:
    """What fmarket serves beyond the fund list: NAVs from the model, for the funds of the fund
    list the YAML fund source's recording serves (`defs/*/data/fmarket_products_filter.json`,
    read through its replay), and test overrides."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock  # has now(), today_ict() and the recorded payloads
        self.nav_overrides: dict[tuple[int, date], dict[str, Any] | None] = {}
        # Behaviours of real servers, off by default (see `ingest replay --help`):
        self.nav_history_days_before = 0  # get-nav-history also returns this many earlier days
        self._specs: dict[int, FundSpec] | None = None

    @property
    def _fund_list(self):
        return recorded_at(self.clock, FUND_LIST)

    @property
    def funds(self) -> list[dict[str, Any]]:
        """The rows /res/products/filter pages through (the recording's; a test may change them)."""
        return self._fund_list.records

    @funds.setter
    def funds(self, rows: list[dict[str, Any]]) -> None:
        self._fund_list.records = rows

    @property
    def products(self) -> list[dict[str, Any]]:
        """The funds the NAV model knows (the recorded fund list's rows)."""
        return self.funds

    @property
    def specs(self) -> dict[int, FundSpec]:
        """The NAV model of each recorded fund, by fmarket's product id."""
        if self._specs is None:
            self._specs = {row["id"]: FundSpec.from_row(row) for row in self._fund_list.records}
        return self._specs

    @specs.setter
    def specs(self, specs: dict[int, FundSpec]) -> None:
        self._specs = specs

    @property
    def fmarket_page_cap(self) -> int | None:
        """The page size the fund list applies whatever pageSize asks (None: as asked)."""
        return self._fund_list.page_cap

    @fmarket_page_cap.setter
    def fmarket_page_cap(self, cap: int | None) -> None:
        self._fund_list.page_cap = cap

    def fund(self, fund_id: int) -> dict[str, Any] | None:
        """The fund list row of `fund_id` (None: not listed)."""
        return next((row for row in self.funds if row.get("id") == fund_id), None)

    def spec(self, fund_id: int) -> FundSpec | None:
        """The NAV model of `fund_id` (None: unknown fund)."""
        return self.specs.get(fund_id)

    def latest_nav_date(self, fund_id: int) -> date | None:
        """The newest NAV date published by now: fmarket stores a day's NAV at 17:00-18:30 ICT."""
        spec = self.specs.get(fund_id)
        if spec is None:
            return None
        now_ms = self.clock.now().timestamp() * 1000
        day = previous_weekday(self.clock.today_ict())
        while (published := spec.published_at_ms(day)) is not None and published > now_ms:
            day = previous_weekday(day - timedelta(days=1))
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
                row = nav_row(spec, day, value)
                if overrides and (fund_id, day) in overrides:
                    change = overrides[(fund_id, day)]
                    row = None if change is None else {**row, **change}
                if row is not None:
                    rows.append(row)
            day += timedelta(days=1)
        return rows


@dataset_part("fmarket", expose=True)
def fund_book(dataset: ReplayDataset) -> FundBook:
    """The fmarket state of a replay dataset."""
    return FundBook(dataset)


# ---------------------------------------------------------------- routes

serve_hooked(NavHistory)  # every worker declared with the NAV hook


@error_answer(BadRequest)
def bad_request(exc: Exception) -> Response:
    """fmarket's 400 envelope."""
    target = getattr(exc, "target", None)
    return Response.json(envelope(None, status=400, message=str(exc), target=target), 400)


def _json_body(request: ReplayRequest) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError:
        raise BadRequest("Request body không hợp lệ") from None
    if not isinstance(body, dict):
        raise BadRequest("Request body không hợp lệ")
    return body


@route("/res/product/get-nav-history", "POST")
def nav_history(request: ReplayRequest, dataset: ReplayDataset) -> Response:
    """The NAV history of one fund over a window."""
    product_id, start, end, all_data = history_window(_json_body(request))
    if start is not None and not all_data and dataset.nav_history_days_before:
        start -= timedelta(days=dataset.nav_history_days_before)  # a server over-returning
    rows = dataset.nav_rows(product_id, None if all_data else start, end)
    return Response.json(envelope(rows))
