"""`eth_gas`'s hook (defs/eth_gas/defs.yaml): the declared JSON-RPC `eth_feeHistory` request,
and Etherscan's gas oracle beside it **when a key is set** (`etherscan_api_key`, a secret
setting: an `env:NAME` reference, never shown)::

    GET https://api.etherscan.io/v2/api?chainid=1&module=gastracker&action=gasoracle&apikey=…
    {"status":"1","message":"OK","result":{"LastBlock":"13286764","SafeGasPrice":"47",
     "ProposeGasPrice":"47","FastGasPrice":"47","suggestBaseFee":"46.111878343",
     "gasUsedRatio":"0.08,0.57,0.41,0.20,0.90"}}

One row per call into the same `gas_price` table, `provider` `etherscan` (the JSON-RPC rows
say `rpc`): the block is `LastBlock`, the three suggested prices and the base fee go to their own
**gwei** columns as the exact decimal text Etherscan sends (never converted to the wei columns
of the JSON-RPC rows); `gasUsedRatio` stays verbatim in `extra` (`result.gasUsedRatio`). A `status` other than "1"
(a bad key, a rate limit) fails the run with Etherscan's `message` and `result`; the key is in
the query only, which no log, metadata or error shows (the URL is named without its query and
the key is a registered secret).

Each provider's own required fields are checked per row (a JSON-RPC block without a base fee,
an Etherscan answer without its proposed price go to `dead_letter`), since the table's columns
are shared and so nullable.
"""

from __future__ import annotations

from typing import Any

from pydantic import create_model, model_validator

from ingestion_pipelines.sources.base import Request, SourceError
from ingestion_pipelines.sources.declared import DeclaredSource
from ingestion_pipelines.sources.declared_body import Found, decode_body

ETHERSCAN = "etherscan"
RPC = "rpc"
# what each provider's row must hold (the columns are shared, so nullable)
REQUIRED = {RPC: ("base_fee_wei",), ETHERSCAN: ("propose_gwei", "base_fee_gwei")}


def _provider_fields(record):
    missing = [c for c in REQUIRED.get(record.provider, ()) if getattr(record, c) is None]
    if missing:
        raise ValueError(f"a {record.provider} row needs {', '.join(missing)}")
    return record


class EthGas(DeclaredSource):
    """The JSON-RPC request as declared, plus Etherscan's gas oracle when a key is set."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "record" in cls.__dict__:  # the declared record, with each provider's own checks
            cls.record = create_model(
                cls.record.__name__,
                __base__=cls.record,
                __validators__={"provider_fields": model_validator(mode="after")(_provider_fields)},
            )

    def build_requests(self):
        """The declared request (its rows `rpc`), then the oracle's when a key is set."""
        for request in super().build_requests():
            request.meta["row"] = {"provider": RPC}
            yield request
        key = self.settings.etherscan_api_key
        if key:
            yield Request(
                self.settings.etherscan_url,
                params={
                    "chainid": "1",
                    "module": "gastracker",
                    "action": "gasoracle",
                    "apikey": key,
                },
                meta={"family": ETHERSCAN, "row": {"provider": ETHERSCAN}, "checkpoint": False},
            )

    def parse(self, response, request):
        """JSON-RPC pages as declared; the oracle's answer as one row."""
        if request.meta.get("family") != ETHERSCAN:
            yield from super().parse(response, request)
            return
        body = decode_body(response.content, "json")
        if not isinstance(body, dict):
            raise SourceError(f"Etherscan's answer is not an object: {str(body)[:200]}")
        if str(body.get("status")) != "1":
            raise SourceError(
                f"Etherscan answered status {body.get('status')!r}: {body.get('message')}: "
                f"{str(body.get('result'))[:200]}"
            )
        result = body.get("result")
        if not isinstance(result, dict):
            raise SourceError(f"Etherscan's result is not an object: {str(result)[:200]}")
        yield self.stamper(body, request)(Found(_as_row(result), body))


def _as_row(result: dict[str, Any]) -> dict[str, Any]:
    """The oracle's `result` with `LastBlock` under the column it fills, and its `gasUsedRatio`
    (five blocks' ratios in one text, not the one block's number the JSON-RPC rows' field
    reads) under `result`, where it was, for `extra`; the rest as sent."""
    row = {("block_number" if k == "LastBlock" else k): v for k, v in result.items()}
    if "gasUsedRatio" in row:
        row["result"] = {"gasUsedRatio": row.pop("gasUsedRatio")}
    return row
