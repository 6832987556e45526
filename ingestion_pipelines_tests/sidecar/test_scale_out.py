"""Three real sidecar processes share six Binance symbols through Redis (one symbol per shard):
balanced, never two connections for one stream, a kill -9 and a clean stop each move shards
within 15 s, a restarted replica takes its share back, and every trade is stored exactly once.
Each replica writes through its own writer process, as `ingest sidecar` does by default: a killed
replica's writer process ends too, and whatever it still commits is fenced by its shards' tokens."""

from __future__ import annotations

import threading
import urllib.request
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, select

from ingestion_pipelines.feeds.binance.replay import BinanceServer, trade_stream
from ingestion_pipelines.storage.tables import feed_fence
from ingestion_pipelines_tests.sidecar.helpers import (
    assert_exactly_once,
    count_trades,
    free_port,
    kill9,
    process_ended,
    sidecar_env,
    spawn_sidecar,
    terminate,
    wait_all_stored,
    wait_until,
    writer_processes,
)

SYMBOLS = ["ADAUSDT", "BNBUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
MOVE_LIMIT_S = 15.0


class Replica:
    """One `ingest sidecar` process with its own local folder and metrics port (a container)."""

    def __init__(self, name, server, database_url, redis_url, tmp_path):
        self.name = name
        self.port = free_port()
        self.log = tmp_path / f"{name}.log"
        self.env = sidecar_env(
            server,
            database_url,
            INGEST_REDIS_URL=redis_url,
            INGEST_SIDECAR_SYMBOLS_PER_SHARD="1",
            INGEST_SIDECAR_HTTP_PORT=str(self.port),
            INGEST_LOCAL_DIR=str(tmp_path / f"{name}-local"),
        )
        self.proc = None

    def start(self) -> Replica:
        self.proc = spawn_sidecar(self.env, self.log)
        return self

    def owned(self) -> int | None:
        """Shards it runs, from its /metrics (None while it does not answer)."""
        try:
            url = f"http://127.0.0.1:{self.port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        for family in text_string_to_metric_families(text):
            if family.name == "ingest_sidecar_owned_shards":
                return int(sum(s.value for s in family.samples))
        return None

    def writer(self) -> int:
        """The pid of its writer process (exactly one: the default of `ingest sidecar`)."""
        pids = writer_processes(self.proc.pid)
        assert len(pids) == 1, f"{self.name}: writer processes {pids}"
        return pids[0]


class StreamWatch:
    """Samples the server's open connections: every stream on how many at once."""

    def __init__(self, server: BinanceServer):
        self.server = server
        self.doubled: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def counts(self) -> Counter:
        return Counter(s for c in self.server.clients() for s in c.details.get("streams", []))

    def covered(self) -> bool:
        counts = self.counts()
        return all(counts[trade_stream(s)] == 1 for s in SYMBOLS)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.doubled += [(s, n) for s, n in self.counts().items() if n > 1]

    def __enter__(self) -> StreamWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)


@pytest.fixture
def binance():
    server = BinanceServer(symbols=SYMBOLS, rate=300, paused=True).start()
    yield server
    server.stop()


def _fence_tokens(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(select(feed_fence.c.feed_id, feed_fence.c.token)).all())
    finally:
        engine.dispose()


def _balanced(replicas: list[Replica]) -> bool:
    owned = [r.owned() for r in replicas]
    return None not in owned and sum(owned) == len(SYMBOLS) and max(owned) - min(owned) <= 1


def _move(watch: StreamWatch, replicas: list[Replica], what: str) -> float:
    """Seconds until every stream is read again and the live replicas share the shards."""
    return wait_until(
        lambda: _balanced(replicas) and watch.covered(),
        MOVE_LIMIT_S,
        f"every symbol read again by balanced replicas after {what}",
        poll=0.1,
    )


def test_three_replicas_share_six_symbols_and_survive_kill_restart_and_stop(
    binance, mariadb_url, redis_url, tmp_path
):
    replicas = [Replica(f"r{i}", binance, mariadb_url, redis_url, tmp_path) for i in range(3)]

    def logs() -> str:
        tails = [f"== {r.name}\n{r.log.read_text()[-6000:]}" for r in replicas if r.log.exists()]
        return "\n".join(tails)

    with StreamWatch(binance) as watch:
        try:
            for replica in replicas:
                replica.start()
            wait_until(lambda: _balanced(replicas), 60, "three replicas sharing six shards", 0.2)
            assert [r.owned() for r in replicas] == [2, 2, 2], logs()
            writers = [r.writer() for r in replicas]
            wait_until(watch.covered, 15, "every symbol read once")
            binance.resume()
            wait_until(lambda: count_trades(mariadb_url) > 1000, 30, "trades committed")

            kill9(replicas[0].proc)  # mid-stream: what it read but did not commit is lost with it
            took_kill = _move(watch, replicas[1:], "kill -9")
            assert [r.owned() for r in replicas[1:]] == [3, 3]
            # its writer process saw the socket close, wrote what it held (fenced) and ended
            wait_until(lambda: process_ended(writers[0]), 10, "the killed replica's writer ending")

            replicas[0].start()  # back: once up, it takes its share again
            wait_until(lambda: replicas[0].owned() is not None, 60, "the replica serving")
            took_join = _move(watch, replicas, "a replica joining")
            assert [r.owned() for r in replicas] == [2, 2, 2]
            assert replicas[0].writer() != writers[0]

            code, took_stop = terminate(replicas[1].proc)
            assert code == 0 and took_stop < 10, logs()
            # stopped by its sidecar after the last flush (its exit is not waited for)
            wait_until(lambda: process_ended(writers[1]), 5, "the stopped replica's writer ending")
            survivors = [replicas[0], replicas[2]]
            took_term = took_stop + _move(watch, survivors, "SIGTERM")  # from the signal
            assert took_term < MOVE_LIMIT_S
            assert [r.owned() for r in survivors] == [3, 3]

            for symbol in SYMBOLS:  # still flowing to every symbol after the last move
                assert binance.wait_trades(symbol, len(binance.trades(symbol)) + 50, 15)
            binance.pause()
            wait_all_stored(mariadb_url, binance, timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs()}") from None
        finally:
            for replica in replicas:
                if replica.proc is not None and replica.proc.poll() is None:
                    terminate(replica.proc)
    assert not watch.doubled, f"a stream read by two connections at once: {watch.doubled[:5]}"
    assert_exactly_once(mariadb_url, binance)
    tokens = _fence_tokens(mariadb_url)  # every commit was fenced by its shard's token
    assert sorted(tokens) == [f"binance_trades#{i}of6" for i in range(6)]
    assert max(tokens.values()) >= 2  # moved shards commit under newer tokens
    print(  # noqa: T201 - the figures the issue asks for
        f"shards moved in {took_kill:.1f} s (kill -9), {took_join:.1f} s (join), "
        f"{took_term:.1f} s (SIGTERM)"
    )
