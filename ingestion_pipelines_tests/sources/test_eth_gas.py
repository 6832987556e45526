"""`eth_gas`: `eth_feeHistory` by JSON-RPC POST, its arrays made one row per block (the base fee
after each block from the extra entry, hex quantities as exact integers), a JSON-RPC error
failing the run naming the endpoint."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pydantic import ValidationError

from ingestion_pipelines.sources.declared import load_declared_sources
from ingestion_pipelines.sources.declared_columns import rows_from_columns
from ingestion_pipelines.storage.declared import DEFS_ROOT
from ingestion_pipelines_tests.sources.conftest import failure_message

ETH_GAS = load_declared_sources()["eth_gas"]
DATA = DEFS_ROOT / "eth_gas" / "data"


def test_the_conformance_capture_makes_one_row_per_block():
    answer = (DATA / "eth_feeHistory_testchain.io").read_text().splitlines()[1]
    result = json.loads(answer[3:], parse_float=Decimal)["result"]
    (row,) = rows_from_columns(result, ETH_GAS.spec.rows_from_columns)
    assert row["block_number"] == 2
    assert row["baseFeePerGas"] == 0x2DBF1F99 and row["nextBaseFeePerGas"] == 0x2824151F
    assert row["reward"] == {"0": 1, "1": 1}  # the two percentiles that request asked
    record = ETH_GAS.record.model_validate({**row, "chain": "ethereum", "provider": "rpc"}).row()
    assert record["gas_used_ratio"] == Decimal("0.009853708990006765")
    assert (record["priority_fee_p10_wei"], record["priority_fee_p90_wei"]) == (1, None)
    assert record["extra"] == {"baseFeePerBlobGas": 1, "blobGasUsedRatio": 0}


def test_the_request_is_json_rpc_and_the_newest_block_keeps_the_next_base_fee(crawler):
    crawler.run("eth_gas")
    (sent,) = crawler.server.requests_for("/eth/", "POST")
    assert sent.json() == {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_feeHistory",
        "params": ["0x1e", "latest", [10, 50, 90]],
    }
    rows = crawler.rows(ETH_GAS.table, order_by=[ETH_GAS.table.c.block_number])
    assert [(r["block_number"], r["base_fee_wei"], r["next_base_fee_wei"]) for r in rows] == [
        (0x3E05ED3, 100_000_000, 100_000_000),
        (0x3E05ED4, 100_000_000, 0x54F2D51),
    ]
    assert {(r["chain"], r["provider"]) for r in rows} == {("ethereum", "rpc")}


def test_a_json_rpc_error_fails_the_run_naming_the_endpoint(crawler):
    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32005, "message": "limit exceeded"}}
    crawler.server.faults.add("/eth/", 200, body=error, times=None)
    crawl = crawler.run("eth_gas", expect_success=False)
    message = failure_message(crawl)
    assert "eth_gas" in message and crawler.server.url + "/eth/" in message
    assert "limit exceeded" in message and crawler.rows(ETH_GAS.table) == []


KEY = "TESTKEY-0123456789ABCDEF"  # a made-up key, read from the environment by reference


def _etherscan(crawler, monkeypatch, capture: str, times: int | None = 1):
    """Serve an Etherscan capture at the replay's /etherscan/v2/api; run eth_gas with a key."""
    monkeypatch.setenv("ETH_GAS_TEST_ETHERSCAN_KEY", KEY)
    crawler.server.faults.add(
        "/etherscan/v2/api", 200, body=(DATA / capture).read_bytes(), times=times, method="GET"
    )
    return {
        "etherscan_api_key": {"env": "ETH_GAS_TEST_ETHERSCAN_KEY"},
        "etherscan_url": crawler.server.url + "/etherscan/v2/api",
    }


def test_without_a_key_only_the_json_rpc_node_is_asked(crawler):
    crawler.run("eth_gas")
    assert crawler.server.requests_for("/etherscan/v2/api") == []


def test_with_a_key_the_gas_oracle_adds_its_row_in_gwei_exactly(crawler, monkeypatch):
    config = _etherscan(crawler, monkeypatch, "etherscan_gasoracle_block13286764.json")
    crawl = crawler.run("eth_gas", run_config=config)
    (sent,) = crawler.server.requests_for("/etherscan/v2/api", "GET")
    assert sent.query == {
        "chainid": "1",
        "module": "gastracker",
        "action": "gasoracle",
        "apikey": KEY,
    }
    table = ETH_GAS.table
    rows = crawler.rows(table, order_by=[table.c.provider, table.c.block_number])
    assert [(r["provider"], r["block_number"]) for r in rows] == [
        ("etherscan", 13286764),
        ("rpc", 0x3E05ED3),
        ("rpc", 0x3E05ED4),
    ]
    oracle = rows[0]
    assert (oracle["safe_gwei"], oracle["propose_gwei"], oracle["fast_gwei"]) == (47, 47, 47)
    assert str(oracle["base_fee_gwei"].normalize()) == "46.111878343"
    assert oracle["base_fee_wei"] is None and oracle["next_base_fee_wei"] is None
    ratios = "0.0812090079979204,0.571384990268454,0.411636499092615,0.200022766666667,"
    assert oracle["extra"] == {"result": {"gasUsedRatio": ratios + "0.901801833333333"}}
    assert all(r["safe_gwei"] is None for r in rows[1:])  # the JSON-RPC rows: wei only
    assert KEY not in str(crawl.metadata)


def test_an_etherscan_error_fails_the_run_without_showing_the_key(crawler, monkeypatch):
    config = _etherscan(crawler, monkeypatch, "etherscan_gasoracle_block13286764.json", times=0)
    crawler.server.faults.clear()
    refused = {"status": "0", "message": "NOTOK", "result": "Invalid API Key (#err2)|x1"}
    crawler.server.faults.add("/etherscan/v2/api", 200, body=refused, times=None)
    crawl = crawler.run("eth_gas", run_config=config, expect_success=False)
    message = failure_message(crawl)
    assert "eth_gas" in message and "NOTOK" in message and "Invalid API Key" in message
    assert KEY not in message
    assert all(KEY not in str(e.message or "") for e in crawl.result.all_events)


def test_each_provider_needs_its_own_fields():
    rpc = {"chain": "ethereum", "provider": "rpc", "block_number": 1, "gasUsedRatio": "0.5"}
    etherscan = {"chain": "ethereum", "provider": "etherscan", "block_number": 1}
    for record, missing in ((rpc, "base_fee_wei"), (etherscan, "propose_gwei")):
        with pytest.raises(ValidationError, match=missing):
            ETH_GAS.record.model_validate(record)
    valid = {**etherscan, "ProposeGasPrice": "11", "suggestBaseFee": "9.849758735"}
    assert ETH_GAS.record.model_validate(valid).row()["propose_gwei"] == 11
