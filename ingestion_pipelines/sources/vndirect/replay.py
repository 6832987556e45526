"""VNDIRECT's public finfo API: ``GET /v4/stock_prices`` (daily prices) as the live service
answers them, generated for every stock of the listing (``GET /v4/stocks``, served from its
recording by `vn_stocks`' declaration, defs/vn_stocks/): `SimulatedPrices` is the selector of the
declared daily-prices replay (its defs.yaml names it as ``replay.simulator``) for the days its
recording does not hold; financial statements (``replay_statements``) are served here too.

Both take a ``q`` filter of ``field:value`` clauses joined by ``~`` (``code:VNM~date:gte:2024-01-02``;
several values for one field are comma separated), ``size`` and a 1-based ``page``, and answer
``{"data": [...], "currentPage", "size", "totalElements", "totalPages"}``. Prices are in thousands
of VND with up to two decimals (``68.7`` is 68,700 VND); volumes are shares, sent as JSON numbers
with a fraction (``2345600.0``). Price rows come newest first with ``sort=date``.

The listing is the recorded rows of ``defs/vn_stocks/data/vndirect_stocks.json`` (real
companies, real fields), optionally grown with generated companies for scale tests (`use_book`
serves a book's listing and prices together); prices are a deterministic function of (symbol, day)
on the trading days of the market calendar from the listing date, on the exchange's price steps.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from ingestion_pipelines.replay.determinism import unit_hash
from ingestion_pipelines.replay.routes import (
    ReplayRequest,
    Response,
    dataset_part,
    fallback,
    read_data,
    route,
    setting_path,
)
from ingestion_pipelines.sources.declared_family import serve_hooked
from ingestion_pipelines.sources.declared_recorded import recorded_at
from ingestion_pipelines.sources.declared_select import selected
from ingestion_pipelines.sources.vndirect.financial_statements import FinancialStatements
from ingestion_pipelines.sources.vndirect.replay_statements import (
    BLOCKED_BODY,
    MODELS_PATH,
    STATEMENTS_PATH,
    VIETCAP_PATH,
    StatementBook,
)
from ingestion_pipelines.vnmarket.calendar import is_trading_day

if TYPE_CHECKING:
    from ingestion_pipelines.replay.dataset import ReplayDataset

STOCKS_PATH = "/v4/stocks"
PRICES_PATH = "/v4/stock_prices"
DEFAULT_SIZE = 20  # what the API applies without `size`
MAX_SIZE = 10_000
FLOORS = ("HOSE", "HNX", "UPCOM")


class QueryError(ValueError):
    """A query the real API answers with 400."""


def parse_q(raw: str) -> dict[str, list[str]]:
    """``code:VNM~date:gte:2024-01-02`` → {"code": ["VNM"], "date:gte": ["2024-01-02"]}."""
    clauses: dict[str, list[str]] = {}
    for clause in filter(None, (raw or "").split("~")):
        name, sep, value = clause.rpartition(":")
        if not sep or not name:
            raise QueryError(f"Invalid query clause: {clause}")
        clauses[name] = [v for v in value.split(",") if v]
    return clauses


def _page_params(query: dict[str, str]) -> tuple[int, int]:
    try:
        size = int(query.get("size") or DEFAULT_SIZE)
        page = int(query.get("page") or 1)
    except ValueError:
        raise QueryError("size and page must be integers") from None
    if size < 1 or page < 1:
        raise QueryError("size and page must be positive")
    return min(size, MAX_SIZE), page


def paged(
    rows: list[dict[str, Any]], query: dict[str, str], cap: int | None = None
) -> dict[str, Any]:
    """The envelope of one page of `rows`, as the API pages them; `cap` is a page size the server
    applies whatever `size` asked for (as many APIs do)."""
    size, page = _page_params(query)
    size = min(size, cap or size)
    total = len(rows)
    return {
        "data": rows[(page - 1) * size : page * size],
        "currentPage": page,
        "size": size,
        "totalElements": total,
        "totalPages": math.ceil(total / size) if total else 0,
    }


# ---------------------------------------------------------------- prices


def _price_step(floor: str, price: Decimal) -> Decimal:
    """The exchange's tick size in thousands of VND (HOSE steps by price band)."""
    if floor != "HOSE":
        return Decimal("0.1")
    if price < 10:
        return Decimal("0.01")
    if price < 50:
        return Decimal("0.05")
    return Decimal("0.1")


def _on_step(floor: str, value: float) -> Decimal:
    raw = Decimal(str(max(value, 0.1)))
    step = _price_step(floor, raw)
    return ((raw / step).quantize(Decimal(1), ROUND_HALF_UP) * step).quantize(Decimal("0.01"))


def _number(value: Decimal) -> float:
    # The API sends prices as JSON numbers; two decimals round-trip exactly through repr.
    return float(value)


@dataclass(frozen=True)
class StockSpec:
    """What the price model needs to know about one listed stock."""

    symbol: str
    floor: str
    listed: date
    delisted: date | None = None

    @property
    def seed(self) -> int:
        """The stock's seed for generated prices."""
        return int.from_bytes(self.symbol.encode(), "big") % (2**61)

    def trades_on(self, day: date) -> bool:
        """True when the stock traded on `day` (a trading day between listing and delisting)."""
        if day < self.listed or not is_trading_day(day):
            return False
        return self.delisted is None or day <= self.delisted

    def close(self, day: date) -> float:
        """The stock's close on `day`, on the exchange's price step."""
        base = 5 + 120 * unit_hash(self.seed, 1)
        t = day.toordinal() / 365.0
        wave = 0.25 * math.sin(2 * math.pi * t / 3 + 6 * unit_hash(self.seed, 2))
        noise = 0.04 * (2 * unit_hash(self.seed, day.toordinal()) - 1)
        return base * math.exp(wave + noise)

    def row(self, day: date) -> dict[str, Any]:
        """One day's row, with every field the live API sends."""
        prev = day - timedelta(days=1)
        while not self.trades_on(prev) and prev > self.listed:
            prev -= timedelta(days=1)
        ref = _on_step(self.floor, self.close(prev if prev >= self.listed else day))
        close = _on_step(self.floor, self.close(day))
        u = unit_hash(self.seed, day.toordinal() * 7)
        open_ = _on_step(self.floor, float(ref + (close - ref) * Decimal(str(round(u, 3)))))
        high = max(open_, close) + _price_step(self.floor, close) * int(1 + 4 * u)
        low = max(min(open_, close) - _price_step(self.floor, close) * int(1 + 3 * (1 - u)), 0)
        low = low or min(open_, close)
        lot = 100
        volume = Decimal(lot * int(200 + 90_000 * unit_hash(self.seed, day.toordinal() * 3)))
        average = ((high + low + close) / 3).quantize(Decimal("0.01"))
        value = (volume * average * 1000).quantize(Decimal(1))
        band = Decimal("0.07") if self.floor == "HOSE" else Decimal("0.10")
        if self.floor == "UPCOM":
            band = Decimal("0.15")
        change = close - ref
        return {
            "code": self.symbol,
            "date": day.isoformat(),
            "time": "15:05:01" if self.floor == "HOSE" else "15:10:02",
            "floor": self.floor,
            "type": "STOCK",
            "basicPrice": _number(ref),
            "ceilingPrice": _number(_on_step(self.floor, float(ref * (1 + band)))),
            "floorPrice": _number(_on_step(self.floor, float(ref * (1 - band)))),
            "open": _number(open_),
            "high": _number(high),
            "low": _number(low),
            "close": _number(close),
            "average": _number(average),
            "adOpen": _number(open_),
            "adHigh": _number(high),
            "adLow": _number(low),
            "adClose": _number(close),
            "adAverage": _number(average),
            "nmVolume": float(volume),
            "nmValue": float(value),
            "ptVolume": 0.0,
            "ptValue": 0.0,
            "change": _number(change),
            "adChange": _number(change),
            "pctChange": round(float(change / ref * 100), 4) if ref else 0.0,
        }


@dataclass
class StockBook:
    """The listing the replay serves and the price model behind it."""

    rows: list[dict[str, Any]]
    specs: dict[str, StockSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.specs = {row["code"]: spec_of(row) for row in self.rows}

    @classmethod
    def recorded(cls, raw: bytes, *, grow_to: int = 0) -> StockBook:
        """The recorded listing (its body, or its rows), plus generated companies up to
        `grow_to` rows (scale tests)."""
        body = json.loads(raw)
        rows = body["data"] if isinstance(body, dict) else body
        rows.extend(generated_rows(grow_to - len(rows), {r["code"] for r in rows}))
        return cls(rows)

    def prices(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """Every daily price row `query` asks for (its ``q`` and ``sort``), unpaged."""
        q = parse_q(query.get("q", ""))
        codes = q.get("code") or []
        start = _date_clause(q, "date:gte") or date(2000, 1, 1)
        end = _date_clause(q, "date:lte") or date.today()
        rows = []
        for code in codes:
            spec = self.specs.get(code)
            if spec is None:
                continue
            day = max(start, spec.listed)
            while day <= end:
                if spec.trades_on(day):
                    rows.append(spec.row(day))
                day += timedelta(days=1)
        return _sorted(rows, query)


def _sorted(rows: list[dict[str, Any]], query: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows in the API's order: newest first with ``sort=date``."""
    rows.sort(key=lambda r: (r["date"], r["code"]), reverse=query.get("sort") == "date")
    return rows


class SimulatedPrices:
    """The selector of the declared prices replay (``replay.simulator``): a request is answered
    with the recorded rows it selects, plus rows generated by the listing's price model
    (`dataset.stock_book`, whose listing `vn_stocks` serves) for every day the recording does
    not hold. The recorded day is so served verbatim and any other day plausibly."""

    def __init__(self, payload: Any, dataset: ReplayDataset) -> None:
        self.payload, self.dataset = payload, dataset

    def __call__(self, params: dict[str, Any], rules: dict[str, Any]) -> list[dict[str, Any]]:
        """The rows a request with `params` asks for (`rules`: the declaration's select)."""
        records = self.payload.records
        recorded_days = {r.get("date") for r in records}
        own = selected(records, rules, params) if rules else list(records)
        made = self.dataset.stock_book.prices({k: str(v) for k, v in params.items()})
        return _sorted(own + [r for r in made if r["date"] not in recorded_days], params)


def spec_of(row: dict[str, Any]) -> StockSpec:
    """The price model of one listing row."""
    delisted = row.get("delistedDate")
    return StockSpec(
        row["code"],
        row["floor"],
        date.fromisoformat(row["listedDate"]),
        date.fromisoformat(delisted) if delisted else None,
    )


def _date_clause(q: dict[str, list[str]], name: str) -> date | None:
    values = q.get(name)
    if not values:
        return None
    try:
        return date.fromisoformat(values[0])
    except ValueError:
        raise QueryError(f"Invalid date: {values[0]}") from None


def generated_rows(count: int, taken: set[str] = frozenset()) -> list[dict[str, Any]]:
    """`count` generated listing rows (three-letter symbols from X.., Z.., Q.., W.., J.. that
    are not in `taken`), spread over the three exchanges like the real market (UPCoM largest)."""
    rows: list[dict[str, Any]] = []
    for code in _generated_codes(taken):
        if len(rows) >= count:
            break
        n = len(rows)
        floor = ("HOSE", "HNX", "UPCOM", "UPCOM")[n % 4]
        listed = date(2007, 1, 2) + timedelta(days=int(5000 * unit_hash(n, 11)))
        rows.append(
            {
                "code": code,
                "type": "STOCK",
                "floor": floor,
                "isin": f"VN000000{code}{n % 10}",
                "status": "listed",
                "companyName": f"Công ty Cổ phần Mẫu {code}",
                "companyNameEng": f"Sample {code} Joint Stock Company",
                "shortName": f"Mẫu {code}",
                "shortNameEng": f"Sample {code}",
                "listedDate": listed.isoformat(),
                "delistedDate": None,
                "companyId": str(900_000 + n),
                "taxCode": None,
            }
        )
    return rows


def _generated_codes(taken: set[str]):
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for first in "XZQWJ":
        for second in letters:
            for third in letters:
                if (code := first + second + third) not in taken:
                    yield code


# ---------------------------------------------------------------- routes


@dataset_part("stock_book")
def recorded_book(_dataset: ReplayDataset) -> StockBook:
    """The prices served: those of the recorded companies (the listing `vn_stocks` serves)."""
    return StockBook.recorded(read_data("vndirect_stocks.json"))


def use_book(dataset: ReplayDataset, book: StockBook) -> StockBook:
    """Serve `book`: its companies as the listing (`vn_stocks`' replay), its prices (those of
    the days the prices replay's recording does not hold)."""
    dataset.stock_book = book
    recorded_at(dataset, STOCKS_PATH).records = book.rows
    return book


# ---------------------------------------------------------------- financial statements

STATEMENT_WORKERS = serve_hooked(FinancialStatements)  # every worker declared with the hook


@dataset_part("statement_book")
def recorded_statements(_dataset: ReplayDataset) -> StatementBook:
    """The statements served: the recordings (`replay_statements`)."""
    return StatementBook.recorded()


@route(MODELS_PATH, "GET")
def vndirect_financial_models(request: ReplayRequest, dataset: ReplayDataset) -> Response:
    """The chart of line items (every statement and note model)."""
    time.sleep(dataset.statement_book.latency_s)
    if "vndirect" in dataset.statement_book.blocked:
        return Response(403, BLOCKED_BODY, {"Content-Type": "text/html"})
    try:
        return Response.json(paged(dataset.statement_book.models, request.query))
    except QueryError as exc:
        return Response.json({"error": str(exc)}, 400)


@route(STATEMENTS_PATH, "GET")
def vndirect_financial_statements(request: ReplayRequest, dataset: ReplayDataset) -> Response:
    """One family's statement rows: the query names its code, reportType and modelType."""
    book = dataset.statement_book
    time.sleep(book.latency_s)
    try:
        q = parse_q(request.query.get("q", ""))
        (code,), (report_type,), (model_type,) = q["code"], q["reportType"], q["modelType"]
        if {"vndirect", f"vndirect:{code}"} & book.blocked:  # all stocks, or this one
            return Response(403, BLOCKED_BODY, {"Content-Type": "text/html"})
        family = (code, report_type, int(float(model_type)))
        return Response.json(paged(book.rows(family), request.query))
    except (KeyError, ValueError) as exc:  # QueryError too
        return Response.json({"error": f"Invalid query: {exc}"}, 400)


# Vietcap IQ, the statements' second provider, under its own prefix (`vietcap_base_url`)
VIETCAP_PREFIX = "/vn_financial_statements/vietcap"
for _worker_id in STATEMENT_WORKERS:
    setting_path(_worker_id, "vietcap_base_url", VIETCAP_PREFIX)
_VIETCAP_ROUTE = re.compile(
    re.escape(VIETCAP_PREFIX + VIETCAP_PATH).replace(r"\{symbol\}", "(?P<symbol>[^/]+)")
    + "(?P<metrics>/metrics)?$"
)


@fallback
def vietcap_financial_statement(request: ReplayRequest, dataset: ReplayDataset) -> Response | None:
    """One stock's statements of one section (`?section=`), or its chart of items
    (`/metrics`), as Vietcap IQ answers them."""
    match = _VIETCAP_ROUTE.match(request.path)
    if match is None:
        return None
    book = dataset.statement_book
    time.sleep(book.latency_s)
    if "vietcap" in book.blocked:
        return Response(403, BLOCKED_BODY, {"Content-Type": "text/html"})
    if match["metrics"]:
        answer = book.vietcap_metrics(match["symbol"])
    else:
        answer = book.vietcap_answer(match["symbol"], request.query.get("section", ""))
    if isinstance(answer, bytes):
        return Response(200, answer, {"Content-Type": "application/json"})
    return Response.json(answer)
