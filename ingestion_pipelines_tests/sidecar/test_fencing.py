"""Fencing inside the commit: once a newer owner (a higher fencing token) has committed rows for a
feed, a sidecar still holding an older token — paused while its lock expired — cannot commit."""

import pytest
from sqlalchemy import select

from ingestion_pipelines.sidecar.spool import Spool
from ingestion_pipelines.sidecar.writer import Writer
from ingestion_pipelines.sidecar.writer_process import ProcessWriter
from ingestion_pipelines.storage.engines import ensure_schema
from ingestion_pipelines.storage.tables import feed_fence, trade_tick
from ingestion_pipelines_tests.sidecar.test_writer import _count, _trade


@pytest.mark.parametrize("in_process", [False, True], ids=["writer thread", "writer process"])
def test_an_older_token_cannot_commit_after_a_newer_one(mariadb_url, tmp_path, in_process):
    """Whether the writer runs in the sidecar's process or in its own (the token travels
    with each batch to the child, which checks it inside the commit)."""
    engine = ensure_schema(mariadb_url)
    tokens = {"binance_trades": 7}

    def writer():
        if in_process:
            return ProcessWriter(
                mariadb_url, spool_dir=tmp_path, fence=tokens.get, batch_rows=10
            ).start()
        return Writer(
            mariadb_url,
            spools=lambda feed: Spool(tmp_path / feed),
            fence=tokens.get,
            batch_rows=10,
        ).start()

    new_owner = writer()
    assert new_owner.submit("binance_trades", "trade_tick", [_trade(1)], "ignore")
    assert new_owner.flush(10)
    new_owner.stop()

    tokens["binance_trades"] = 6  # the paused old owner wakes up and writes
    old_owner = writer()
    assert old_owner.submit("binance_trades", "trade_tick", [_trade(2), _trade(3)], "ignore")
    assert old_owner.flush(10)
    assert old_owner.metrics_for("binance_trades").dropped_not_owner == 2
    assert old_owner.submit("ssi_iboard", "trade_tick", [_trade(4)], "ignore")  # not fenced
    assert old_owner.flush(10)
    old_owner.stop()
    assert _count(mariadb_url, trade_tick) == 2

    tokens["binance_trades"] = 8  # a later owner takes over and writes
    later = writer()
    assert later.submit("binance_trades", "trade_tick", [_trade(5)], "ignore")
    assert later.flush(10)
    later.stop()
    assert _count(mariadb_url, trade_tick) == 3
    with engine.connect() as conn:
        stored = conn.execute(
            select(feed_fence.c.token).where(feed_fence.c.feed_id == "binance_trades")
        )
        assert stored.scalar_one() == 8
