"""`eth_gas`: `eth_feeHistory` by JSON-RPC POST, its arrays made one row per block (the base fee
after each block from the extra entry, hex quantities as exact integers), a JSON-RPC error
failing the run naming the endpoint."""

from __future__ import annotations

import json
from decimal import Decimal

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
