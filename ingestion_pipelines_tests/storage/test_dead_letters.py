"""Dead letters are stored once: each carries a fingerprint of what it is, unique per worker, and
is inserted with ignore semantics, so writing the same letter again (a batch sent again after the
writer process died before acknowledging it) keeps one row, on every database."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, inspect, select

from ingestion_pipelines.storage.dead_letters import (
    DeadLetter,
    dead_letter_row,
    insert_dead_letters,
    write_dead_letters,
)
from ingestion_pipelines.storage.engines import ensure_schema, get_engine
from ingestion_pipelines.storage.migrate import downgrade, head_revision, upgrade
from ingestion_pipelines.storage.tables import dead_letter

RECEIVED = datetime(2026, 11, 30, 9, 15, 0, 123456, tzinfo=UTC)


def _letters(url: str) -> list[dict]:
    with get_engine(url).connect() as conn:
        query = select(dead_letter).order_by(dead_letter.c.id)
        return [dict(row) for row in conn.execute(query).mappings()]


def test_the_same_dead_letter_written_twice_is_stored_once(database_url):
    engine = ensure_schema(database_url)
    frame = b'{"stream":"btcusdt@trade","data":{"p":"NaN"}}'
    letter = dead_letter_row(
        "binance_trades", "bad price", frame, received_at=RECEIVED, context={"n": 1}
    )
    other = dead_letter_row("binance_trades", "bad price", frame + b" ", received_at=RECEIVED)
    assert insert_dead_letters(engine, [letter]) == 1
    with engine.begin() as conn:  # again, in a later transaction, beside a new letter
        insert_dead_letters(conn, [dict(letter), other, dict(letter)])
    stored = _letters(database_url)
    assert [s["fingerprint"] for s in stored] == [letter["fingerprint"], other["fingerprint"]]
    assert stored[0]["payload"] == frame.decode() and stored[0]["reason"] == "bad price"
    assert stored[0]["received_at"] == RECEIVED and stored[0]["context"] == {"n": 1}
    # another worker's identical letter is its own
    insert_dead_letters(engine, [{**letter, "worker_id": "ssi_iboard"}])
    assert len(_letters(database_url)) == 3


def test_crawl_letters_written_twice_are_stored_once(database_url):
    engine = ensure_schema(database_url)
    letters = [
        DeadLetter("fmarket_nav", f"nav: not a number ({i})", {"nav": "x"}, {"url": "u"})
        for i in range(3)
    ]
    assert write_dead_letters(engine, letters, "run-1") == 3
    write_dead_letters(engine, letters, "run-1")
    stored = _letters(database_url)
    assert len(stored) == 3 and {s["run_id"] for s in stored} == {"run-1"}


def test_a_letter_is_identified_by_what_it_is():
    made = [dead_letter_row("w", "refused", "(1, 2)", context={"table": "t"}) for _ in range(2)]
    assert made[0]["fingerprint"] == made[1]["fingerprint"]  # undated: the same input is one
    assert made[0]["received_at"].tzinfo is UTC  # (and still dated when it was made)
    variants = [
        dead_letter_row("w", "refused", "(1, 2)", received_at=RECEIVED, context={"table": "t"}),
        dead_letter_row("w", "refused", "(1, 3)", context={"table": "t"}),
        dead_letter_row("w", "refused!", "(1, 2)", context={"table": "t"}),
        dead_letter_row("w", "refused", "(1, 2)", context={"table": "u"}),
        dead_letter_row("v", "refused", "(1, 2)", context={"table": "t"}),
    ]
    prints = {made[0]["fingerprint"], *(v["fingerprint"] for v in variants)}
    assert len(prints) == 6 and all(len(p) == 64 for p in prints)
    same_instant = RECEIVED.astimezone(datetime.now().astimezone().tzinfo)
    again = dead_letter_row(
        "w", "refused", "(1, 2)", received_at=same_instant, context={"table": "t"}
    )
    assert again["fingerprint"] == variants[0]["fingerprint"]


def test_0008_keeps_older_letters_with_no_fingerprint(database_url):
    engine = ensure_schema(database_url)
    assert downgrade(database_url, "0007") == "0007"
    assert "fingerprint" not in {c["name"] for c in inspect(engine).get_columns("dead_letter")}
    old = {"worker_id": "w", "received_at": RECEIVED, "reason": "r", "payload": "p"}
    with engine.begin() as conn:  # two identical letters from before the fingerprint
        conn.execute(dead_letter.insert(), [old, old])  # (only the columns given)
    assert upgrade(database_url) == head_revision()
    stored = _letters(database_url)
    assert [(s["reason"], s["fingerprint"]) for s in stored] == [("r", None), ("r", None)]
    # an old letter read back from a spool (no fingerprint key) gets one, and is then unique
    with engine.begin() as conn:
        insert_dead_letters(conn, [{**old, "run_id": None, "context": None}] * 2)
    stored = _letters(database_url)
    assert len(stored) == 3 and stored[2]["fingerprint"] is not None
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(dead_letter)).scalar_one()
    assert count == 3
