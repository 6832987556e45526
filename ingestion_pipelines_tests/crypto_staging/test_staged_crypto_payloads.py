"""The staged issue-21 payloads say what their FIELDS.md says they say: interval arithmetic of the
klines, the block count of `eth_feeHistory`, seconds beside milliseconds in the difficulty
estimate, decimal strings where decimals are promised. The payloads of the sources declared since
(`binance_tickers`, `coinpaprika_markets`, `binance_klines`) are read where they moved, their source's
`ingestion_pipelines/defs/<worker_id>/data/`; those of `btc_chain` in its hook family's
`ingestion_pipelines/sources/mempool/data/`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ingestion_pipelines.storage.declared import DEFS_ROOT

STAGING = Path(__file__).resolve().parents[2] / "staging"
DECLARED = (
    "binance_tickers",
    "coinpaprika_markets",
    "binance_klines",
    "eth_gas",
)  # moved into defs/<worker_id>/data
# moved into a Python family's folder: worker -> the family package's folder
FAMILY = {"btc_chain": Path(__file__).resolve().parents[2] / "ingestion_pipelines/sources/mempool"}
INTERVAL_MS = {"1m": 60_000, "30m": 30 * 60_000, "1d": 86_400_000}


def _file(path: str) -> Path:
    worker, _, rest = path.partition("/")
    if worker in FAMILY:
        return FAMILY[worker] / rest
    return (DEFS_ROOT if worker in DECLARED else STAGING) / path


def _json(path: str):
    return json.loads(_file(path).read_text(encoding="utf-8"), parse_float=Decimal)


def test_declared_payloads_left_staging():
    for worker in DECLARED:
        assert not (STAGING / worker).exists()
        assert (DEFS_ROOT / worker / "defs.yaml").is_file()
    for worker, family in FAMILY.items():
        assert not (STAGING / worker).exists()
        assert (family / "replay.py").is_file() and (family / "data/PROVENANCE.md").is_file()


@pytest.mark.parametrize(
    ("path", "interval"),
    [
        ("binance_klines/data/klines_BTCUSDT_30m_2019-04-11.json", "30m"),
        ("binance_klines/data/klines_BTCUSDT_1d_testnet_2026-06-03.json", "1d"),
        ("binance_klines/data/klines_BTCUSDT_1m_replay.json", "1m"),
    ],
)
def test_kline_rows_close_one_millisecond_before_the_next_open(path, interval):
    rows = _json(path)
    for row in rows:
        assert len(row) == 12 and row[11] == "0"
        assert row[6] == row[0] + INTERVAL_MS[interval] - 1  # close_time
        assert all(isinstance(row[i], str) for i in (1, 2, 3, 4, 5, 7, 9, 10))  # exact decimals
        assert isinstance(row[8], int)  # trade count
        low, high = Decimal(row[3]), Decimal(row[2])
        assert low <= Decimal(row[1]) <= high and low <= Decimal(row[4]) <= high
        assert Decimal(row[9]) <= Decimal(row[5])  # taker buys are part of the volume
    assert [r[0] for r in rows] == [
        rows[0][0] + i * INTERVAL_MS[interval] for i in range(len(rows))
    ]


def test_the_1m_replay_is_the_30m_capture_with_only_its_times_changed():
    served = _json("binance_klines/data/klines_BTCUSDT_1m_replay.json")
    captured = _json("binance_klines/data/klines_BTCUSDT_30m_2019-04-11.json")
    assert [r[1:6] + r[7:] for r in served] == [r[1:6] + r[7:] for r in captured]
    assert served[0][0] == captured[0][0]


def test_the_1m_websocket_bar_spans_one_minute():
    lines = _file("binance_klines/data/kline_1m_ws_session_2021-10-12.jsonl").read_text()
    for line in lines.splitlines():
        k = json.loads(json.loads(line)["raw"])["data"]["k"]
        assert (k["i"], k["T"] - k["t"]) == ("1m", 59_999)


def test_ticker_windows_and_trade_counts():
    ticker = _json("binance_tickers/data/ticker_24hr_BTCUSDT_testnet_2026-06-15.json")
    assert ticker["closeTime"] - ticker["openTime"] == 86_400_000
    assert ticker["lastId"] - ticker["firstId"] + 1 == ticker["count"]
    change = Decimal(ticker["lastPrice"]) - Decimal(ticker["openPrice"])
    assert change == Decimal(ticker["priceChange"])  # exact, from the strings
    (documented,) = _json("binance_tickers/data/ticker_24hr_docs_example.json")
    served = _json("binance_tickers/data/ticker_24hr_symbols_replay.json")
    assert served == [documented, ticker]  # the replay's array: both, each verbatim
    rolling = _json("binance_tickers/data/ticker_rolling_BTCUSDT_2024-01-02.json")
    assert (
        "bidPrice" not in rolling and rolling["lastId"] - rolling["firstId"] + 1 == rolling["count"]
    )


def test_fee_history_has_one_base_fee_more_than_blocks():
    request, response = (
        json.loads(line[3:])
        for line in _file("eth_gas/data/eth_feeHistory_testchain.io").read_text().splitlines()
    )
    blocks = int(request["params"][0], 16)
    result = response["result"]
    assert len(result["gasUsedRatio"]) == blocks
    assert len(result["baseFeePerGas"]) == blocks + 1  # the last: the next block's base fee
    assert len(result["reward"][0]) == len(request["params"][2])  # one per percentile
    no_percentiles = _json("eth_gas/data/eth_feeHistory_testnet_no_percentiles.json")["result"]
    assert len(no_percentiles["baseFeePerGas"]) == len(no_percentiles["gasUsedRatio"]) + 1
    assert no_percentiles["reward"] == [[], []]


@pytest.mark.parametrize("name", ["block13286764", "block15816910", "block14836699_nokey"])
def test_etherscan_oracle_prices_are_gwei_strings(name):
    body = _json(f"eth_gas/data/etherscan_gasoracle_{name}.json")
    assert body["status"] == "1" and body["message"].startswith("OK")
    result = body["result"]
    assert name.startswith(f"block{result['LastBlock']}")
    safe, propose, fast = (
        Decimal(result[k]) for k in ("SafeGasPrice", "ProposeGasPrice", "FastGasPrice")
    )
    assert 0 < safe <= propose <= fast < 10_000  # gwei, not wei
    assert len(result["gasUsedRatio"].split(",")) == 5


def test_mempool_and_difficulty_units():
    mempool = _json("btc_chain/data/mempool.json")
    histogram = mempool["fee_histogram"]
    assert [rate for rate, _vsize in histogram] == sorted((r for r, _ in histogram), reverse=True)
    assert sum(vsize for _rate, vsize in histogram) == mempool["vsize"]
    diff = _json("btc_chain/data/v1_difficulty_adjustment_height957697.json")
    estimated = datetime.fromtimestamp(diff["estimatedRetargetDate"] / 1000, UTC)  # ms
    previous = datetime.fromtimestamp(diff["previousTime"], UTC)  # seconds
    assert previous < estimated and previous.year == estimated.year
    assert diff["remainingBlocks"] == 2016 - round(diff["progressPercent"] * Decimal("20.16"))
    fees = _json("btc_chain/data/v1_fees_recommended.json")
    assert fees["fastestFee"] >= fees["halfHourFee"] >= fees["hourFee"] >= fees["minimumFee"]
    assert _file("btc_chain/data/blocks_tip_height_2025-01.txt").read_text().isdigit()


@pytest.mark.parametrize(
    "path",
    [
        "coinpaprika_markets/data/v1_tickers_2022-09-21_first.json",
        "coinpaprika_markets/data/v1_tickers_2023-07-11_first.json",
    ],
)
def test_coinpaprika_numbers_read_exactly(path):
    (coin,) = _json(path)
    usd = coin["quotes"]["USD"]
    assert isinstance(usd["price"], Decimal)  # read from the JSON text, never through a float
    assert coin["id"] == "btc-bitcoin" and coin["rank"] == 1
    implied_supply = usd["market_cap"] / usd["price"]
    assert abs(implied_supply - coin["circulating_supply"]) / coin["circulating_supply"] < Decimal(
        "0.001"
    )
