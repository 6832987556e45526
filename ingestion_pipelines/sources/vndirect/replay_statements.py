"""VNDIRECT's finfo ``GET /v4/financial_statements`` and ``GET /v4/financial_models``, as the live
service answers them (``{"data": [...], "currentPage", "size", "totalElements", "totalPages"}``,
``q=code:FPT~reportType:QUARTER~modelType:1``, ``sort=fiscalDate:desc``, 1-based ``page``).

Served per request from the recordings (data/PROVENANCE.md): the FPT QUARTER model-1 row and the
VCB ANNUAL model-102 row for exactly their queries, the models listing's one record (model 203,
securities cash flow). The listing the recordings need is completed with replay-made model
records for model types 1 and 102 (`modelTypeName` as their rows suggest, no item names: no
capture gives them). Every other family is empty unless a scale run grows the book with
generated stocks (`grow`): three non-finance statement models of `items` line items each,
quarterly and annual rows over `years`, values whole VND sent as JSON floats like the capture's.
The routes (paging, the `q` filter) are in `replay.py`, with the other finfo routes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from ingestion_pipelines.replay.determinism import unit_hash
from ingestion_pipelines.replay.routes import read_data

STATEMENTS_PATH = "/v4/financial_statements"
MODELS_PATH = "/v4/financial_models"
RECORDED_STATEMENTS = (
    "vndirect_financial_statements_FPT_QUARTER_model1_excerpt.json",
    "vndirect_financial_statements_VCB_ANNUAL_model102_excerpt.json",
)
RECORDED_MODELS = "vndirect_financial_models_excerpt.json"
# Replay-made records completing the listing for the recorded rows' model types.
COMPLETING_MODELS = ((1, "BALANCESHEET", "NON_FINANCE", 14310), (102, "INCOME", "BANK", 421601))
# The generated stocks' statement models (scale runs only).
GENERATED_MODELS = ((2001, "BALANCESHEET"), (2002, "INCOME"), (2003, "CASHFLOW"))

Family = tuple[str, str, int]  # (code, reportType, modelType)


def model_row(model_type: int, name: str, form: str, item_code: int, **names: str) -> dict:
    """A models-listing record shaped like the recorded one (names only where given)."""
    return {
        "modelType": float(model_type),
        "modelTypeName": name,
        "companyForm": form,
        "itemCode": float(item_code),
        **names,
        "displayOrder": float(item_code % 1000),
        "displayLevel": 1.0,
        "formType": "ALL",
        "ratioCode": None,
    }


@dataclass
class StatementBook:
    """The models listing and the statement rows served, by family."""

    models: list[dict[str, Any]]
    families: dict[Family, list[dict[str, Any]]] = field(default_factory=dict)
    latency_s: float = 0.0
    generated: dict[str, tuple[int, int]] = field(default_factory=dict)  # code -> (years, items)
    last_year: int = 2025

    @classmethod
    def recorded(cls) -> StatementBook:
        """The recordings, with the listing records their model types need."""
        models = json.loads(read_data(RECORDED_MODELS))["data"]
        models += [model_row(t, n, f, code) for t, n, f, code in COMPLETING_MODELS]
        book = cls(models)
        for name in RECORDED_STATEMENTS:
            for row in json.loads(read_data(name))["data"]:
                key = (row["code"], row["reportType"], int(row["modelType"]))
                book.families.setdefault(key, []).append(row)
        return book

    def grow(self, codes: list[str], years: int, items: int) -> None:
        """Serve generated statements for `codes`: `years` years to `last_year`, `items` line
        items per statement model, quarterly and annual (computed per request, never stored)."""
        for model_type, name in GENERATED_MODELS:
            for n in range(items):
                code = model_type * 100 + n
                self.models.append(
                    model_row(
                        model_type,
                        name,
                        "NON_FINANCE",
                        code,
                        itemVnName=f"Khoản mục {code}",
                        itemEnName=f"Item {code}",
                    )
                )
        for code in codes:
            self.generated[code] = (years, items)

    def rows(self, family: Family) -> list[dict[str, Any]]:
        """Every row of one family, newest first."""
        rows = list(self.families.get(family, []))
        code, report_type, model_type = family
        if code in self.generated and model_type in dict(GENERATED_MODELS):
            rows += self.generated_rows(code, report_type, model_type)
        return sorted(rows, key=lambda r: r["fiscalDate"], reverse=True)

    def generated_rows(self, code: str, report_type: str, model_type: int) -> list[dict]:
        """A generated stock's rows: deterministic whole-VND values per (code, item, period)."""
        years, items = self.generated[code]
        ends = ((3, 31), (6, 30), (9, 30), (12, 31)) if report_type == "QUARTER" else ((12, 31),)
        seed = int.from_bytes(code.encode(), "big")
        rows = []
        for year in range(self.last_year - years + 1, self.last_year + 1):
            for month, day in ends:
                fiscal = date(year, month, day).isoformat()
                for n in range(items):
                    item = model_type * 100 + n
                    value = int(unit_hash(seed, item * 100_003 + year * 13 + month) * 1e13)
                    rows.append(self.served_row(code, item, report_type, model_type, value, fiscal))
        return rows

    @staticmethod
    def served_row(code, item, report_type, model_type, value, fiscal, **more) -> dict:
        """One statement row with the fields of the capture (numbers as JSON floats)."""
        return {
            "code": code,
            "itemCode": float(item),
            "reportType": report_type,
            "modelType": float(model_type),
            "numericValue": float(value),
            "fiscalDate": fiscal,
            **more,
        }

    def restate(self, family: Family, fiscal: str, item: int, value: Decimal, modified: str):
        """Replace one served value (a restatement), marking its `modifiedDate`."""
        rows = self.families.setdefault(family, [])
        for n, row in enumerate(rows):
            if row["fiscalDate"] == fiscal and int(row["itemCode"]) == item:
                rows[n] = {**row, "numericValue": float(value), "modifiedDate": modified}
                return
        raise KeyError((family, fiscal, item))
