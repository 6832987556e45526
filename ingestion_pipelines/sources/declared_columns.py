"""Records sent as columns: one object whose arrays hold one value per row (Ethereum's
`eth_feeHistory`: ``{"oldestBlock": "0x3e05ed3", "baseFeePerGas": [...], "gasUsedRatio": [...],
"reward": [[...], ...]}``), turned into one record per index.

    records: result                      # the object
    rows_from_columns:
      length: gasUsedRatio               # the array whose length is the row count
      columns: [baseFeePerGas, gasUsedRatio, reward, baseFeePerBlobGas, blobGasUsedRatio]
      number: {from: oldestBlock, as: block_number}   # row i is number `from` + i
      next: {baseFeePerGas: nextBaseFeePerGas}        # row i also gets the array's element i + 1
      hex: [oldestBlock, baseFeePerGas, reward, baseFeePerBlobGas]   # "0x..." quantities

Row i holds element i of each of `columns` (None past an array's end), the element i + 1 of the
`next` arrays under their new name (`baseFeePerGas` has one entry more than there are blocks:
the last is the base fee of the block after the newest), and `number`. `hex` names values that
are JSON-RPC quantities: read as exact integers (lists of them, e.g. `reward`'s percentiles, as
mappings of their indexes, so that fields read ``reward.0``); anything else there is kept as
sent, for the record model to refuse.
"""

from __future__ import annotations

from typing import Any

from ingestion_pipelines.sources.base import SourceError
from ingestion_pipelines.sources.declared_each import as_mapping


def _quantity(value: Any) -> Any:
    if isinstance(value, list):
        return as_mapping([_quantity(v) for v in value])
    if isinstance(value, str) and value[:2].lower() == "0x":
        try:
            return int(value, 16)
        except ValueError:
            return value
    return value


def rows_from_columns(body: Any, rule: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of a column-wise object (see the module's docstring)."""
    if not isinstance(body, dict):
        raise SourceError(f"expected an object of arrays, got {str(body)[:200]}")
    length = body.get(rule["length"])
    if not isinstance(length, list):
        raise SourceError(f"expected an array at {rule['length']}: {str(body)[:200]}")
    hexes = set(rule.get("hex") or ())

    def read(name: str, index: int) -> Any:
        values = body.get(name)
        value = values[index] if isinstance(values, list) and index < len(values) else None
        return _quantity(value) if name in hexes else value

    number = rule.get("number")
    first = None
    if number:
        first = _quantity(body.get(number["from"])) if number["from"] in hexes else None
        first = first if first is not None else body.get(number["from"])
        if not isinstance(first, int):
            raise SourceError(f"{number['from']} is not a number: {body.get(number['from'])!r}")
    rows = []
    for i in range(len(length)):
        row = {name: read(name, i) for name in rule["columns"]}
        for name, renamed in (rule.get("next") or {}).items():
            row[renamed] = read(name, i + 1)
        if number:
            row[number["as"]] = first + i
        rows.append(row)
    return rows
