"""Feeds declare their tables' policies; the sidecar's engine and writer follow them and never
test a table's name."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

import ingestion_pipelines.sidecar as sidecar_package
from ingestion_pipelines.feeds.base import Feed, feed_classes
from ingestion_pipelines.storage.table_policy import (
    CONTROL,
    POLICIES,
    QUOTES,
    TRADES,
    TablePolicy,
    policy_of,
    refused_trades,
)


def test_every_feed_declares_registered_policies_and_its_tables_follow_them():
    for worker_id, cls in feed_classes().items():
        assert cls.policies, worker_id
        assert cls.tables == tuple(p.table for p in cls.policies)
        assert all(POLICIES[p.table] is p for p in cls.policies)
    assert feed_classes()["ssi_iboard"].policies == (QUOTES, TRADES)


def test_a_policy_the_registry_does_not_know_is_refused_at_declaration():
    rogue = TablePolicy("trade_tick", on_conflict="update")
    with pytest.raises(TypeError, match="'trade_tick' is not the one"):
        type("RogueFeed", (Feed,), {"policies": (rogue,)})


def test_tables_no_feed_declares_get_the_control_policy():
    assert policy_of("dead_letter") is CONTROL and policy_of("worker_state") is CONTROL
    assert not (CONTROL.fenced or CONTROL.derived_bars or CONTROL.trades)
    assert (TRADES.on_conflict, QUOTES.on_conflict) == ("ignore", "update")


def test_refused_trades_names_each_bad_row_and_passes_good_batches_whole():
    good = {"price": Decimal("1.5"), "quantity": Decimal("2")}
    assert refused_trades([good, good]) == []
    bad = {"price": Decimal("-1"), "quantity": Decimal("2")}
    ((row, why),) = refused_trades([good, bad])
    assert row is bad and why.startswith("price -1")


def test_the_engine_and_the_writer_never_branch_on_a_table_name():
    folder = Path(sidecar_package.__file__).parent
    for name in ("engine.py", "writer.py", "committer.py", "writer_process.py", "writer_child.py"):
        text = (folder / name).read_text()
        code = re.sub(r'"""[\s\S]*?"""|#[^\n]*', "", text)  # docstrings and comments aside
        assert '"trade_tick"' not in code and '"stock_quote"' not in code, name
