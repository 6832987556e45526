"""Issue 19's failover measure: with the first provider answering 403, a run completes from the
second provider with at most one extra request per partition.

`vn_indices` (VNDIRECT first, Vietcap second) runs through the engine against each provider's
recording served at its real path (ingestion_pipelines_tests/sources/providers_replay.py), VNDIRECT
switched to answer 403. Two shapes: one run per trading-day partition (health kept between runs
in worker_state, as the schedule runs it), and one run over the whole range (a backfill). The same
for `vn_stock_eod` (VNDIRECT's /v4/stock_prices blocked, Vietcap's chart API second; one stock,
FPT, in `stock`: a partition is one stock's window). Then
`coingecko_markets` (CoinGecko blocked, CoinPaprika second), one unpartitioned run. Requests are
counted at the server, per path.

    .venv/bin/python benchmarks/failover.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' providers replay

from datetime import date  # noqa: E402

from ingestion_pipelines.storage import tables  # noqa: E402
from ingestion_pipelines.storage.engines import dispose_all, ensure_schema  # noqa: E402
from ingestion_pipelines_tests.sources.providers_replay import (  # noqa: E402
    COINGECKO_PATH,
    DAYS,
    STOCK_PRICES_PATH,
    VNDIRECT_PATH,
    Providers,
    run_worker,
    serve,
)

# FPT's trading days in the recordings (vn_stock_eod's Vietcap replay)
STOCK_DAYS = [date(2026, 9, d) for d in (15, 16, 17, 18, 21, 22, 23)]
FPT = {"symbol": "FPT", "exchange": "HOSE", "name": "FPT", "type": "STOCK", "status": "listed"}


def _sent(before: dict[str, int]) -> dict[str, int]:
    return {p: n - before.get(p, 0) for p, n in Providers.hits.items() if n - before.get(p, 0)}


def per_partition_runs(
    base: str, url: str, worker_id: str = "vn_indices", days: list[date] = DAYS
) -> list[int]:
    """Extra requests of each one-partition run (requests sent minus the one a partition needs)."""
    extra = []
    for day in days:
        before = dict(Providers.hits)
        result = run_worker(worker_id, url, base, [day])
        sent = _sent(before)
        extra.append(sum(sent.values()) - 1)
        print(
            f"  partition {day}: requests {sent}, records {result.metadata()['rows_by_provider']}"
        )
    return extra


def _listing(url: str) -> str:
    with ensure_schema(url).begin() as conn:
        conn.execute(tables.stock.insert(), [FPT])
    return url


def stock_eod(base: str, folder: str) -> None:
    """`vn_stock_eod` with VNDIRECT answering 403: per partition, then over the range."""
    Providers.blocked = {STOCK_PRICES_PATH}
    print("vn_stock_eod, VNDIRECT answering 403, one run per partition (FPT):")
    url = _listing(f"sqlite:///{Path(folder) / 'eod_runs.db'}")
    extra = per_partition_runs(base, url, "vn_stock_eod", STOCK_DAYS)
    print(f"  extra requests per partition: {extra} (max {max(extra)}, goal <= 1)")
    before = dict(Providers.hits)
    url = _listing(f"sqlite:///{Path(folder) / 'eod_range.db'}")
    meta = run_worker("vn_stock_eod", url, base, STOCK_DAYS).metadata()
    print(f"vn_stock_eod, one run over {len(STOCK_DAYS)} days: requests {_sent(before)}, "
          f"records {meta['rows_by_provider']}, failovers {meta['failovers']}")  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory() as folder, serve() as base:
        Providers.blocked = {VNDIRECT_PATH}
        print("vn_indices, VNDIRECT answering 403, one run per partition:")
        extra = per_partition_runs(base, f"sqlite:///{Path(folder) / 'runs.db'}")
        print(f"  extra requests per partition: {extra} (max {max(extra)}, goal <= 1)")

        before = dict(Providers.hits)
        meta = run_worker("vn_indices", f"sqlite:///{Path(folder) / 'range.db'}", base, DAYS)
        sent = _sent(before)
        print(f"vn_indices, one run over {len(DAYS)} partitions: requests {sent}, ")
        print(
            f"  records {meta.metadata()['rows_by_provider']}, failovers {meta.metadata()['failovers']}"
        )

        stock_eod(base, folder)

        Providers.blocked = {COINGECKO_PATH}
        before = dict(Providers.hits)
        result = run_worker("coingecko_markets", f"sqlite:///{Path(folder) / 'crypto.db'}", base)
        print(f"coingecko_markets, CoinGecko answering 403: requests {_sent(before)}, "
              f"records {result.metadata()['rows_by_provider']}")  # fmt: skip
        dispose_all()


if __name__ == "__main__":
    main()
