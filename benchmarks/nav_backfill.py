"""NAV backfill of 60 funds x 10 years against the replay server, into MariaDB.

Prints, measured side by side in one run on one fresh MariaDB:
- the raw upsert ceiling of the same rows (our `upsert`, and plain `executemany` INSERT);
- the crawl without Dagster (`sources.runner.crawl`: HTTP, JSON with exact decimals, validation,
  upsert);
- the same backfill through Dagster (`materialize` of a 10-year partition range, one run), on
  each Dagster instance storage asked for (`--instances`): `ephemeral` (in-memory SQLite),
  `sqlite` (a DAGSTER_HOME on disk, the demo's), `postgres` (dagster-postgres, events one at a
  time) and `postgres-batched` (the same with `BATCHING_ENV`: DAGSTER_EVENT_BATCH_SIZE writes the
  per-partition materializations of a range run in batches, and
  DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS records one planned event for the range);
- the per-run overhead Dagster adds (a one-day partition through `materialize` vs `crawl`).

A range run records one materialization per partition (Dagster's own, so the UI shows every
partition materialized) and one evaluation per check for the whole range (each check's metadata
names the range): the per-partition events are what batching makes cheap.

The replay runs in its own process and serves the backfill's NAV histories computed before any
timing (`--live-replay`: computed per request, as in the tests, on the same two cores as the
crawl and MariaDB).

Usage: .venv/bin/python benchmarks/nav_backfill.py [--database-url URL] [--years 10] [--funds 60]
       [--instances ephemeral,sqlite,postgres,postgres-batched] [--live-replay]
Without --database-url a temporary MariaDB is started from the test bed (Debian's mariadb-server);
a PostgreSQL instance storage is started from the test bed too.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


# What makes a range run cheap on a PostgreSQL instance (see the README): the run worker writes
# the per-partition materializations in batches, and the process creating the run records one
# "planned" event with the range instead of one per partition.
BATCHING_ENV = {
    "DAGSTER_EVENT_BATCH_SIZE": "1000",
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1",
}


def with_funds(dataset, funds: int) -> None:
    """Serve `funds` funds: the recording has 58, clones of them make up more."""
    from ingestion_pipelines.sources.fmarket import replay as fmarket

    while len(dataset.products) < funds:
        clone = copy.deepcopy(dataset.products[len(dataset.products) % 58])
        clone["id"] = 90_000 + len(dataset.products)
        clone["code"] = f"{clone['code']}{len(dataset.products)}"
        dataset.products.append(clone)
        dataset.specs[clone["id"]] = fmarket.FundSpec.from_row(clone)
    dataset.products[:] = dataset.products[:funds]  # the fund list served, too
    dataset.specs = {row["id"]: dataset.specs[row["id"]] for row in dataset.products}


def serve_computed_histories(dataset, start: date, end: date) -> None:
    """Make the replay serve the backfill's histories computed now, before any timing: a remote
    server's work costs the crawling machine nothing, while the replay's model (sin, exp and a
    hash per row) would take one of these two cores from the crawl it measures."""
    computed = {(f, start, end): dataset.nav_rows(f, start, end) for f in dataset.specs}
    compute = dataset.nav_rows
    dataset.nav_rows = lambda f, first, last: (
        computed.get((f, first, last)) or compute(f, first, last)
    )


def dagster_alone(asset):
    """An asset shaped like `asset` (partitions, single-run backfills, the same checks, one
    evaluation each, the per-partition metadata of a range run) whose body does nothing."""
    import dagster as dg

    from ingestion_pipelines.sources.factory import RANGE_METADATA_KEYS

    names = [spec.name for spec in asset.check_specs]

    @dg.asset(
        name="dagster_alone",
        partitions_def=asset.partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[dg.AssetCheckSpec(name, asset="dagster_alone") for name in names],
    )
    def alone(context):  # no annotations: the module defers them and Dagster reads them
        first, last = context.partition_key_range
        metadata = {key: 0 for key in RANGE_METADATA_KEYS}
        metadata["partition_range"] = f"{first}..{last}"
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(check_name=name, passed=True, metadata={"covers": first})
                for name in names
            ],
        )

    return alone


def print_report(title, raw_insert, ceilings, upsert_same, crawl, dagster) -> None:
    """The table of rows/s and ratios to the upsert ceiling (the mean of its measures)."""
    print(f"\nNAV backfill: {title}")
    print(f"{'path':<52}{'rows/s':>12}{'vs ceiling':>12}")
    ceiling = sum(ceilings) / len(ceilings)
    for name, value in (
        ("raw executemany INSERT, batches of 1000", raw_insert),
        (
            "upsert(), new rows (the ceiling: mean of "
            + " and ".join(f"{c:,.0f}" for c in ceilings)
            + ", before and after)",
            ceiling,
        ),
        ("upsert(), all rows unchanged", upsert_same),
        ("crawl() without Dagster (HTTP+parse+validate+upsert)", crawl),
        *((f"Dagster materialize, one run, instance: {kind}", v) for kind, v in dagster.items()),
    ):
        print(f"{name:<52}{value:>12,.0f}{value / ceiling:>11.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--funds", type=int, default=60)
    parser.add_argument("--instances", default="ephemeral,postgres-batched")
    parser.add_argument("--event-batch-size", type=int, default=1000)
    parser.add_argument(
        "--live-replay",
        action="store_true",
        help="the replay computes each NAV history when asked (on this machine's cores)",
    )
    args = parser.parse_args()
    instances = args.instances.split(",")
    os.environ.setdefault("INGEST_LOCAL_DIR", tempfile.mkdtemp(prefix="bench-nav-"))
    os.environ.setdefault("DAGSTER_HOME", tempfile.mkdtemp(prefix="bench-dagster-"))

    import dagster as dg
    from loguru import logger
    from sqlalchemy import text

    from ingestion_pipelines.http_client.resource import HttpClientResource
    from ingestion_pipelines.replay.http_server import ReplayServer
    from ingestion_pipelines.sources.base import Window, source_classes
    from ingestion_pipelines.sources.fmarket import replay as fmarket
    from ingestion_pipelines.sources.runner import crawl
    from ingestion_pipelines.storage.engines import ensure_schema
    from ingestion_pipelines.storage.tables import fund_nav
    from ingestion_pipelines.storage.upsert import upsert

    logger.remove()
    logger.add(sys.stderr, level="WARNING")

    with ExitStack() as stack:
        url = args.database_url
        if url is None:
            from ingestion_pipelines_tests.testbed.mariadb import throwaway_database

            url = throwaway_database(stack)
        os.environ["INGEST_DATABASE_URL"] = url
        engine = ensure_schema(url)

        replay = ReplayServer()  # bound here, served by its own process (below)
        stack.callback(replay.stop)
        dataset = replay.dataset
        with_funds(dataset, args.funds)
        os.environ.update(replay.env())
        end = fmarket.previous_weekday(dataset.today_ict() - timedelta(days=1))
        start = end - timedelta(days=365 * args.years)
        window = Window(start, end + timedelta(days=1), "Asia/Ho_Chi_Minh")
        if not args.live_replay:
            serve_computed_histories(dataset, start, end)
        # The replay answers from its own process, as a remote server would: in this process it
        # would take the GIL from the crawl it is measuring.
        server_process = multiprocessing.get_context("fork").Process(
            target=replay._httpd.serve_forever, daemon=True
        )
        server_process.start()
        stack.callback(server_process.terminate)

        def reset():
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM fund_nav"))

        # 1. Raw ceilings with the same rows.
        rows = [
            {
                "fund_id": f,
                "nav_date": date.fromisoformat(r["navDate"]),
                "nav": Decimal(str(r["nav"])),
            }
            for f in dataset.specs
            for r in dataset.nav_rows(f, start, end)
        ]
        n = len(rows)
        reset()
        t = time.perf_counter()
        with engine.begin() as conn:
            for i in range(0, n, 1000):
                conn.execute(fund_nav.insert(), rows[i : i + 1000])
        raw_insert = n / (time.perf_counter() - t)

        def upsert_ceiling() -> float:
            reset()
            t = time.perf_counter()
            result = upsert(engine, fund_nav, rows)
            assert result.inserted == n
            return n / (time.perf_counter() - t)

        ceilings = [upsert_ceiling()]
        t = time.perf_counter()
        result = upsert(engine, fund_nav, rows)
        upsert_same = n / (time.perf_counter() - t)
        assert result.unchanged == n

        # 2. The crawl without Dagster.
        from ingestion_pipelines.config.workers import get_worker

        settings = get_worker("fmarket_nav").settings(base_url=replay.url, page_size=100)
        http = HttpClientResource(redis_url="")

        def direct(win):
            with http.session("fmarket_nav") as session:
                t0 = time.perf_counter()
                res = crawl(
                    source_classes()["fmarket_nav"](settings, win),
                    session=session,
                    data_engine=engine,
                    control_engine=engine,
                )
                return res, time.perf_counter() - t0

        reset()
        res, crawl_s = direct(window)
        assert res.written.inserted == n, (res.written, n)
        reset()

        # 3. Through Dagster: one run for the whole range, on each instance storage.
        from ingestion_pipelines.definitions import build_definitions

        defs = build_definitions()
        asset = next(a for a in defs.assets if a.key.to_user_string() == "fmarket_nav")
        postgres = None

        def make_instance(kind: str) -> dg.DagsterInstance:
            nonlocal postgres
            for name in BATCHING_ENV:
                os.environ.pop(name, None)
            if kind == "ephemeral":
                return dg.DagsterInstance.ephemeral()
            home = tempfile.mkdtemp(prefix=f"bench-dagster-{kind}-")
            if kind.startswith("postgres"):
                if postgres is None:
                    from ingestion_pipelines_tests.testbed.postgres import PostgresServer

                    postgres = stack.enter_context(PostgresServer())
                    postgres.start()
                database = postgres.create_database("dagster_" + kind.replace("-", "_"))
                pg_url = postgres.url(database)
                Path(home, "dagster.yaml").write_text(
                    f"storage:\n  postgres:\n    postgres_url: {pg_url}\n"
                    "telemetry:\n  enabled: false\n"
                )
                if kind == "postgres-batched":
                    os.environ.update(BATCHING_ENV)
                    os.environ["DAGSTER_EVENT_BATCH_SIZE"] = str(args.event_batch_size)
            else:
                Path(home, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
            return dg.DagsterInstance.from_config(home)

        def through_dagster(first: date, last: date, target=asset):
            t0 = time.perf_counter()
            out = dg.materialize(
                [target],
                resources=defs.resources,
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": first.isoformat(),
                    "dagster/asset_partition_range_end": last.isoformat(),
                },
            )
            assert out.success
            return out, time.perf_counter() - t0

        dagster_s: dict[str, float] = {}
        alone_s: dict[str, float] = {}
        for kind in instances:
            reset()
            instance = make_instance(kind)
            out, dagster_s[kind] = through_dagster(start, end)
            materializations = out.asset_materializations_for_node("fmarket_nav")
            assert materializations[0].metadata["records_inserted"].value == n
            assert len(materializations) == (end - start).days + 1  # one per partition
            checks = len(list(asset.check_specs))  # one evaluation per check, for the range
            assert len(out.get_asset_check_evaluations()) == checks
            # Dagster's own share: the same range on the same instance, for an asset of the same
            # shape (partitions, checks, per-partition metadata) that crawls nothing.
            alone_s[kind] = through_dagster(start, end, dagster_alone(asset))[1]

        # The ceiling again, after the long runs: the ratios are against the mean of both (these
        # machines are shared, and their load moves while one run lasts).
        ceilings.append(upsert_ceiling())

        # 4. Per-run overhead: one day, direct vs Dagster (median of 5).
        day = end
        one_day = Window(day, day + timedelta(days=1), "Asia/Ho_Chi_Minh")
        direct_runs = sorted(direct(one_day)[1] for _ in range(5))
        dagster_runs = sorted(through_dagster(day, day)[1] for _ in range(5))
        overhead = dagster_runs[2] - direct_runs[2]
        from ingestion_pipelines.storage.logs import shutdown_logging

        shutdown_logging()  # while the database is still up

    print_report(
        f"{len(dataset.specs)} funds x {args.years} years = {n:,} rows, into "
        f"{url.split('://')[0]}; replay histories "
        + ("computed per request" if args.live_replay else "computed before timing"),
        raw_insert,
        ceilings,
        upsert_same,
        n / crawl_s,
        {kind: n / seconds for kind, seconds in dagster_s.items()},
    )
    print(
        f"\nDagster per-run overhead (1-day partition, median of 5): {overhead:.2f} s "
        f"(direct {direct_runs[2]:.2f} s, materialize {dagster_runs[2]:.2f} s)"
    )
    print(
        f"Whole backfill: crawl {crawl_s:.1f} s; through Dagster "
        + ", ".join(f"{kind} {seconds:.1f} s" for kind, seconds in dagster_s.items())
    )
    partitions = (end - start).days + 1
    print(
        f"Dagster alone (an asset of the same shape crawling nothing, {partitions:,} partitions): "
        + ", ".join(
            f"{kind} {seconds:.1f} s ({1000 * seconds / partitions:.2f} ms a partition)"
            for kind, seconds in alone_s.items()
        )
        + f"; the upsert ceiling writes these rows in {n / (sum(ceilings) / len(ceilings)):.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
