"""The trees in the README and docs/architecture.md match the package (issue 18, item 6): every
package and top-level module of `ingestion_pipelines` is named there, and nothing named there is
missing from the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ingestion_pipelines

PACKAGE = Path(ingestion_pipelines.__file__).parent
ROOT = PACKAGE.parent
# A first-level entry of the tree: two spaces, a package (`name/`) or a module (`name.py`).
ENTRY = re.compile(r"^  (?:[a-z_]+/ +)?([a-z_]+)(/|\.py)\s", re.M)


def _code_layout() -> set[str]:
    packages = {p.name + "/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    packages |= {p.name + "/" for p in PACKAGE.iterdir() if p.name == "defs" and p.is_dir()}
    modules = {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    return packages | modules


def _tree_of(document: str) -> set[str]:
    text = (ROOT / document).read_text(encoding="utf-8")
    block = text[text.index("```\ningestion_pipelines/\n") :]
    block = block[: block.index("\n```", 4)]
    named = {m[1] + m[2] for m in ENTRY.finditer(block)}
    # "demo/ ... standins/" may share a line: every `name/` at a column boundary counts.
    named |= {m + "/" for m in re.findall(r"\s{3}([a-z_]+)/\s", block)}
    return named


@pytest.mark.parametrize("document", ["README.md", "docs/architecture.md"])
def test_the_tree_names_every_package_and_module(document):
    code = _code_layout()
    assert {"core/", "config/", "sources/", "cli.py"} <= code  # the walk found the package
    named = _tree_of(document)
    assert code - named == set(), f"{document} does not name {sorted(code - named)}"


@pytest.mark.parametrize("document", ["README.md", "docs/architecture.md"])
def test_the_tree_names_nothing_that_is_gone(document):
    # A name in the tree (a first-level entry, or a package named inside another's line) must
    # exist somewhere in the package.
    directories = {p.name + "/" for p in PACKAGE.rglob("*") if p.is_dir()}
    files = {p.name for p in PACKAGE.rglob("*.py")}
    gone = {n for n in _tree_of(document) if n not in directories | files}
    assert gone == set(), f"{document} names what the code no longer has: {sorted(gone)}"


def test_no_loose_helpers_at_the_top():
    # Only the two entry points (the CLI and the Dagster definitions) sit at the top level.
    assert {p.name for p in PACKAGE.glob("*.py")} == {"__init__.py", "cli.py", "definitions.py"}
