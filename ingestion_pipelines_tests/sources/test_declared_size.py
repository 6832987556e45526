"""Issue 18's measure, held on a real paginated source of the catalogue: a paginated REST source
is one defs.yaml of at most 40 lines (comments included), one recorded payload and one provenance
line. `test_declared_copy.py` copies the same folder into a working new source."""

from __future__ import annotations

from ingestion_pipelines.sources.declared import load_declared_sources
from ingestion_pipelines.sources.declared_testing import standard_of
from ingestion_pipelines.sources.paginators import PaginatorSpec
from ingestion_pipelines.storage.declared import DEFS_ROOT

MEASURED = "vn_financial_ratios"  # the README's figure
MAX_LINES = 40


def test_a_paginated_source_is_40_lines_one_payload_and_one_provenance_line():
    folder = DEFS_ROOT / MEASURED
    lines = (folder / "defs.yaml").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, len(lines)
    source = load_declared_sources()[MEASURED]
    assert PaginatorSpec.of(source.spec.paginator).kind == "page_number"
    payloads = sorted(p.name for p in (folder / "data").iterdir() if p.name != "PROVENANCE.md")
    assert payloads == [source.spec.replay["file"]]
    provenance = (folder / "data" / "PROVENANCE.md").read_text(encoding="utf-8")
    entries = [line for line in provenance.splitlines() if line.startswith("- ")]
    assert len(entries) == 1 and entries[0].startswith(f"- `{payloads[0]}`")
    assert standard_of(source) is not None  # the standard tests run on it, from `expect`


def test_the_defaults_the_short_declaration_relies_on():
    """What it leaves out is still said: a key's text is never empty, the replay pages by the
    parameter sent as `{settings.page_size}`, a column's path is its name."""
    from ingestion_pipelines.sources.declared_defaults import page_size_param

    source = load_declared_sources()[MEASURED]
    assert page_size_param(source.spec) == "size"
    record = {"code": "", "reportDate": "2022-09-30", "ratioCode": "X", "period": "1M", "value": 1}
    errors = _errors(source.record, record)
    assert [e["loc"] for e in errors] == [("code",)] and "at least 1" in errors[0]["msg"]
    assert _errors(source.record, {**record, "code": "ILB"}) == []
    assert _errors(source.record, {**record, "code": "ILB", "period": ""})[0]["loc"] == ("period",)


def _errors(model, record) -> list[dict]:
    from pydantic import ValidationError

    try:
        model.model_validate(record)
    except ValidationError as exc:
        return exc.errors()
    return []
