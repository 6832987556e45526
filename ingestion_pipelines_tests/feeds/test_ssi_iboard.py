"""The SSI feed against the recording replayed by a local server that speaks its protocol
(403 without a browser User-Agent), through the sidecar into a real MariaDB."""

from __future__ import annotations

import pytest
import websocket
from sqlalchemy import create_engine, func, select

from ingestion_pipelines.feeds.ssi_iboard import ICT, trade_id
from ingestion_pipelines.replay.ws_ssi import SsiServer
from ingestion_pipelines.storage.tables import stock_quote, trade_tick
from ingestion_pipelines_tests.sidecar.helpers import sidecar_thread, wait_until


def _expected_trades(frames: list[str]) -> set[tuple]:
    """Derived independently: a trade wherever a symbol's cumulative volume (field 54) rises."""
    previous: dict[str, int] = {}
    out = set()
    for raw in frames:
        f = raw.split("|")
        symbol, volume = f[1][2:], int(f[54])
        if symbol in previous and volume > previous[symbol]:
            out.add(
                (
                    symbol,
                    volume - previous[symbol],
                    int(f[42]),
                    {"b": "buy", "s": "sell"}[f[66]],
                    int(f[101]),
                )
            )
        previous[symbol] = max(volume, previous.get(symbol, 0))
    return out


def _stored(url):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            quotes = conn.execute(select(func.count()).select_from(stock_quote)).scalar_one()
            trades = (
                conn.execute(select(trade_tick).where(trade_tick.c.source == "ssi"))
                .mappings()
                .all()
            )
    finally:
        engine.dispose()
    return quotes, trades


@pytest.mark.parametrize("speed", [0.05, 0.0], ids=["20x", "as-fast-as-possible"])
def test_recording_replayed_twice_gives_the_same_rows(speed, mariadb_url, monkeypatch):
    for _pass in range(2):  # the same frames a second time: the same quotes and trade ids
        with SsiServer(speed=speed) as server:
            monkeypatch.setenv("INGEST_SSI_IBOARD__BASE_URL", server.url)
            n = len(server.recording.frames)
            with sidecar_thread(mariadb_url, ["ssi_iboard"]):
                wait_until(lambda: server.done.is_set(), 60, "the recording played")  # noqa: B023
                wait_until(lambda: len(server.frames_sent) == n, 10, "every frame sent")  # noqa: B023
                frames = server.frames_sent
                distinct = len({(f.split("|")[1], f.split("|")[101]) for f in frames})
                wait_until(lambda: _stored(mariadb_url)[0] == distinct, 10, "every frame stored")  # noqa: B023
        quotes, trades = _stored(mariadb_url)
        assert quotes == distinct
        got = {
            (
                t["symbol"],
                int(t["quantity"]),
                int(t["price"]),
                t["side"],
                round(t["traded_at"].timestamp() * 1000),
            )
            for t in trades
        }
        assert got == _expected_trades(frames) and len(trades) == len(got) == 17
        for t in trades:  # the id says the ICT trading date and the volume after the trade
            day = t["traded_at"].astimezone(ICT).strftime("%Y%m%d")
            assert t["trade_id"] // 10**11 == int(day)


def test_handshake_needs_a_browser_user_agent():
    with SsiServer(speed=0) as server:
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            websocket.create_connection(
                server.realtime_url, header=["User-Agent: python"], timeout=5
            )
        assert info.value.status_code == 403


def test_trade_id_is_deterministic():
    assert trade_id("20260414", 11774300) == trade_id("20260414", 11774300) == 2026041400011774300
