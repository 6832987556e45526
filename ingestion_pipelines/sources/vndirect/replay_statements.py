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

The second provider, Vietcap IQ (``GET /api/iq-insight-service/v1/company/<symbol>/
financial-statement?section=...``, `vietcap_answer`; its ``.../financial-statement/metrics``,
`vietcap_metrics`: the recorded excerpt, plus a generated stock's item names): its recording (TCB's income statement,
defs/vn_financial_statements/data/PROVENANCE.md) for exactly that stock and section; for a
generated stock, the same values as VNDIRECT's generated rows in Vietcap's wide shape (one object
per period, item ``<bsa|isa|cfa><n>``: the same unit, full VND, so both providers must land the
same decimals); any other stock an empty ``{"data": {"years": [], "quarters": []}}`` (what
Vietcap answers for a stock it lacks is not shown by any capture). `blocked` providers answer
403 with an HTML body, as the providers' WAFs do.
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
VIETCAP_PATH = "/api/iq-insight-service/v1/company/{symbol}/financial-statement"
VIETCAP_METRICS = "vietcap_financial_statement_metrics_excerpt.json"  # served for every stock
VIETCAP_RECORDED = {
    ("TCB", "INCOME_STATEMENT"): "vietcap_financial_statement_TCB_INCOME_STATEMENT_excerpt.json"
}
# Vietcap's section of each generated model, and the prefix of its item keys there.
VIETCAP_SECTIONS = {
    "BALANCE_SHEET": (2001, "bsa"),
    "INCOME_STATEMENT": (2002, "isa"),
    "CASH_FLOW": (2003, "cfa"),
}
BLOCKED_BODY = b"<html><head><title>403 Forbidden</title></head><body>403 Forbidden</body></html>"

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
    # providers answering 403: "vndirect", "vietcap", or "vndirect:<code>" (that stock's families)
    blocked: set[str] = field(default_factory=set)

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
        rows = []
        for year in range(self.last_year - years + 1, self.last_year + 1):
            for month, day in ends:
                fiscal = date(year, month, day).isoformat()
                for n in range(items):
                    item = model_type * 100 + n
                    value = self.generated_value(code, item, year, month)
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

    def generated_value(self, code: str, item: int, year: int, month: int) -> int:
        """A generated stock's whole-VND value of one item and period end (both providers)."""
        seed = int.from_bytes(code.encode(), "big")
        return int(unit_hash(seed, item * 100_003 + year * 13 + month) * 1e13)

    def vietcap_metrics(self, code: str) -> bytes | dict:
        """Vietcap's chart of items for one stock: the recorded excerpt, with a generated
        stock's generated items named as the generated VNDIRECT models name theirs."""
        if code not in self.generated:
            return read_data(VIETCAP_METRICS)
        chart = json.loads(read_data(VIETCAP_METRICS))
        _years, items = self.generated[code]
        for section, (_model, prefix) in VIETCAP_SECTIONS.items():
            chart["data"][section] = chart["data"].get(section, []) + [
                {
                    "level": 1,
                    "parent": None,
                    "titleEn": f"Item {prefix}{n + 1}",
                    "titleVi": f"Khoản mục {prefix}{n + 1}",
                    "field": f"{prefix}{n + 1}",
                    "name": f"{prefix.upper()}{n + 1}",
                }
                for n in range(items)
            ]
        return chart

    def vietcap_answer(self, code: str, section: str) -> bytes | dict:
        """Vietcap's answer for one stock and section: its recording (bytes, verbatim), a
        generated stock's periods, or no period."""
        recorded = VIETCAP_RECORDED.get((code, section))
        if recorded is not None:
            return read_data(recorded)
        if code not in self.generated or section not in VIETCAP_SECTIONS:
            return {"data": {"years": [], "quarters": []}}
        years, items = self.generated[code]
        model_type, prefix = VIETCAP_SECTIONS[section]
        periods: dict[str, list[dict]] = {"years": [], "quarters": []}
        for year in range(self.last_year - years + 1, self.last_year + 1):
            for length, month in ((1, 3), (2, 6), (3, 9), (4, 12), (5, 12)):
                period = {"organCode": code, "yearReport": year, "lengthReport": length}
                for n in range(items):
                    value = self.generated_value(code, model_type * 100 + n, year, month)
                    period[f"{prefix}{n + 1}"] = float(value)
                periods["years" if length == 5 else "quarters"].append(period)
        return {"data": periods}
