"""Shard plans within the source's limits, a balanced and stable assignment, and the replica set
on a real Redis."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import redis

from ingestion_pipelines.sidecar.shards import (
    SOURCE_LIMITS,
    STARTS_SHARE,
    ConnectionBudget,
    ConnectionLimits,
    ReplicaSet,
    assign,
    plan_shards,
    to_run,
    worker_of,
)


def test_one_shard_keeps_the_feed_id_as_its_key():
    (shard,) = plan_shards("binance_trades", "binance", ["ethusdt", "btcusdt"])
    assert shard.key == "binance_trades" and worker_of(shard.key) == "binance_trades"
    assert shard.symbols == ("ethusdt", "btcusdt")  # unchanged: the feed as it always ran


def test_symbols_dealt_into_shards_every_replica_computes_the_same():
    symbols = ["s6", "s1", "s5", "s2", "s4", "s3"]
    shards = plan_shards("binance_trades", "binance", symbols, symbols_per_shard=1)
    assert [s.key for s in shards] == [f"binance_trades#{i}of6" for i in range(6)]
    assert sorted(sym for s in shards for sym in s.symbols) == sorted(symbols)
    assert plan_shards("binance_trades", "binance", list(reversed(symbols)), 1) == shards
    assert {worker_of(s.key) for s in shards} == {"binance_trades"}
    uneven = plan_shards("binance_trades", "binance", symbols + ["s7"], symbols_per_shard=3)
    assert sorted(len(s.symbols) for s in uneven) == [2, 2, 3]


def test_binance_limits_shape_the_shards():
    limits = SOURCE_LIMITS["binance"]
    assert limits.streams_per_connection == 1024 and limits.connections_per_window == 300
    many = [f"sym{i}" for i in range(2500)]
    shards = plan_shards("binance_trades", "binance", many)
    assert len(shards) == 3 and max(len(s.symbols) for s in shards) <= 1024
    assert len(plan_shards("binance_trades", "binance", many, symbols_per_shard=5000)) == 3
    with pytest.raises(ValueError, match="300"):
        plan_shards("binance_trades", "binance", many, symbols_per_shard=5)


def test_a_source_without_known_limits_stays_one_shard():
    (shard,) = plan_shards("ssi_iboard", "ssi", ["VCB", "FPT", "MBB"], symbols_per_shard=1)
    assert shard.key == "ssi_iboard" and shard.symbols == ("VCB", "FPT", "MBB")


def test_assignment_is_balanced_and_moves_only_what_it_must():
    keys = [f"binance_trades#{i}of6" for i in range(6)]
    three = assign(keys, ["a", "b", "c"])
    assert set(three) == set(keys)
    assert sorted(list(three.values()).count(r) for r in "abc") == [2, 2, 2]
    assert assign(list(reversed(keys)), ["c", "a", "b"]) == three  # same answer everywhere

    two = assign(keys, ["a", "b"])  # c is gone: its shards need a new home, few others move
    assert sorted(list(two.values()).count(r) for r in "ab") == [3, 3]
    assert assign(keys, []) == {}
    kept = []
    for trial in range(100):
        replicas = [f"replica-{trial}-{n}" for n in range(3)]
        before, after = assign(keys, replicas), assign(keys, replicas[:2])
        assert sorted(list(before.values()).count(r) for r in replicas) == [2, 2, 2]
        kept.append(sum(1 for k in keys if before[k] != replicas[2] and after[k] == before[k]))
    assert min(kept) >= 2 and sum(kept) / len(kept) >= 3.5  # of the 4 survivors' shards


def test_replica_set_heartbeats_expire_and_leave(redis_url):
    client = redis.Redis.from_url(redis_url)
    a = ReplicaSet(client, "replica-a", ttl_s=0.6)
    b = ReplicaSet(client, "replica-b", ttl_s=0.6)
    assert a.beat() == ["replica-a"]
    assert b.beat() == ["replica-a", "replica-b"]
    time.sleep(0.8)  # a stops beating (killed): it drops out once its heartbeat is too old
    assert b.beat() == ["replica-b"]
    assert a.beat() == ["replica-a", "replica-b"]
    a.leave()  # a clean stop: gone at once
    assert b.beat() == ["replica-b"]


def test_replica_set_reports_redis_down():
    client = redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.5)
    assert ReplicaSet(client, "replica-a").beat() is None


def test_shards_and_health_import_no_dagster():
    code = (
        "import sys, ingestion_pipelines.sidecar.health, ingestion_pipelines.sidecar.shards; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "local"])
def test_connection_budget_keeps_starts_within_the_window(shared, redis_url):
    limits = {"binance": ConnectionLimits(1024, connections_per_window=5, window_s=1.0)}
    client = redis.Redis.from_url(redis_url) if shared else None
    a, b = ConnectionBudget(client, limits), ConnectionBudget(client, limits)
    assert ConnectionBudget().limits["binance"] == SOURCE_LIMITS["binance"]
    assert int(5 * STARTS_SHARE) == 4  # a fifth is left to the engines' own reconnects
    assert [a.take("binance") for _ in range(3)] == [True] * 3
    if shared:  # replicas on Redis share one budget
        assert [b.take("binance"), b.take("binance")] == [True, False]
    else:  # each process counts its own
        assert [a.take("binance"), a.take("binance")] == [True, False]
    assert a.take("ssi") and a.take(None)  # no known limits
    time.sleep(1.1)
    assert a.take("binance")


def _settle(keys: list[str], holders: dict, live: list[str]) -> int:
    """Replicas decide in turn, seeing the leases as they are, until nothing changes; returns
    how many leases changed hands (a release and the take that follows count once)."""
    moves = 0
    for _round in range(10):
        changed = False
        for me in live:
            mine, take = to_run(keys, holders, live, me)
            for key in keys:
                if holders[key] == me and key not in mine:
                    holders[key] = None
                    changed = True
                    moves += 1
            for key in take:
                holders[key] = me
                changed = True
        if not changed:
            return moves
    raise AssertionError(f"no stable layout: {holders}")


def _loads(holders: dict, live: list[str]) -> list[int]:
    return [list(holders.values()).count(r) for r in live]


@pytest.mark.parametrize("run", range(50))
def test_replicas_coming_and_going_converge_to_balance_without_churn(run):
    keys = [f"binance_trades#{i}of6" for i in range(6)]
    a, b, c, d = (f"replica-{run}-{name}" for name in "abcd")
    holders = dict.fromkeys(keys)
    assert _settle(keys, holders, [a]) == 0 and _loads(holders, [a]) == [6]
    assert _settle(keys, holders, [a, b]) == 3 and _loads(holders, [a, b]) == [3, 3]
    assert (
        _settle(keys, holders, [a, b, c]) <= 3
    )  # 2 at least; the shared assignment may ask 1 more
    assert _loads(holders, [a, b, c]) == [2, 2, 2]
    assert _settle(keys, holders, [a, b, c]) == 0  # balanced: nothing moves

    for key in keys:  # c killed: its leases run out, its heartbeat too
        if holders[key] == c:
            holders[key] = None
    assert _settle(keys, holders, [a, b]) <= 1  # c's two shards are taken, at most one more moves
    assert _loads(holders, [a, b]) == [3, 3] and None not in holders.values()

    assert _settle(keys, holders, [a, b, d]) <= 3  # a new replica takes its share
    assert _loads(holders, [a, b, d]) == [2, 2, 2]


def test_a_single_shard_stays_with_its_owner_when_standbys_join():
    holders = {"binance_trades": None}
    assert _settle(["binance_trades"], holders, ["a"]) == 0
    assert _settle(["binance_trades"], holders, ["a", "b", "c"]) == 0
    assert holders == {"binance_trades": "a"}
