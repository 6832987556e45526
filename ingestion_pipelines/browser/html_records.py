"""HTML to records, declared: tables and lists become records through a spec of selectors, a
column map and types, on selectolax's lexbor parser (an HTML5 parser, as browsers parse).

Nothing here depends on Dagster or on a browser: a Python source and the YAML component of the
source kit use the same `PageSpec` (a pydantic model, so a plain dict validates into it):

    spec = PageSpec.model_validate({
        "fields": {"title": {"css": "title"}},
        "tables": [{
            "tables": "table.prices",
            "skip": "th",
            "kinds": [{"name": "price", "fields": {
                "symbol": {"column": 0, "required": True},
                "close": {"column": 3, "type": "decimal"},
            }}],
        }],
    })
    page = extract(decode_html(body, content_type), spec)

Tables are read as a browser lays them out: `rowspan` and `colspan` are expanded into a grid, so
`column` is the position under the header whatever spans the rows above have. A row is matched
to the first kind whose `when` selector its own cells contain (rows matching no kind are
skipped, as are rows containing `skip`); a kind with `parent` belongs to the latest row of that
kind (a channel under its transponder). A field that cannot be read or converted leaves the
record's `errors` non-empty, with the row's HTML kept, so the caller can dead-letter that row
alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from selectolax.lexbor import LexborHTMLParser, LexborNode

# ---- the spec --------------------------------------------------------------------------------


class FieldSpec(BaseModel):
    """How one value is read: from a grid `column` of the row (None: the whole row, or the page
    for page fields), the first element matching `css` inside it, its `attr` or its text; the
    text's `line` (lines end at `<br>`; empty lines dropped; -1 is the last); a regular
    expression `pattern` (searched, multi-line) and its `group`; then converted to `type`."""

    model_config = ConfigDict(extra="forbid")

    column: int | None = Field(None, ge=0)
    css: str | None = None
    attr: str | None = None
    line: int | None = None
    pattern: str | None = None
    group: int | str = 1
    type: Literal["text", "int", "decimal", "date", "lines"] = "text"
    date_format: str = "%Y-%m-%d"
    required: bool = False
    strict: bool = False  # text present that `pattern` does not match is an error


class RowKind(BaseModel):
    """One kind of row, read into `fields`: the rows with at least `min_cells` own cells whose
    own cells contain `when` (a selector) and whose own cell at grid column `when_column`
    has text matching `when_pattern` (each test applies when given)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    when: str | None = None
    when_column: int | None = Field(None, ge=0)
    when_pattern: str | None = None
    min_cells: int = Field(1, ge=0)
    parent: str | None = None
    fields: dict[str, FieldSpec]


class TableSpec(BaseModel):
    """The tables matching `tables` (css), their rows read by `kinds` in order. With `rows` (css),
    the containers matching `tables` are lists: each element matching `rows` inside one is a
    row, its element children its cells (a `<ul>`'s `<li>`, a card's `<div>`s)."""

    model_config = ConfigDict(extra="forbid")

    tables: str = "table"
    rows: str | None = None
    skip: str | None = None
    kinds: list[RowKind]


class PageSpec(BaseModel):
    """A page: its own `fields` (read from the document) and its `tables`."""

    model_config = ConfigDict(extra="forbid")

    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    tables: list[TableSpec] = Field(default_factory=list)


# ---- the result -------------------------------------------------------------------------------


@dataclass
class ExtractedRow:
    """One record read from one table row: its kind, values, the parent record's index in
    `ExtractedPage.rows` (None: none), what could not be read, and the row's HTML."""

    kind: str
    values: dict[str, Any]
    errors: list[str]
    html: str
    index: int
    parent: int | None = None

    @property
    def ok(self) -> bool:
        """True when every field was read."""
        return not self.errors


@dataclass
class ExtractedPage:
    """What a page holds: its own fields (with their errors) and its rows in document order."""

    values: dict[str, Any]
    errors: list[str]
    rows: list[ExtractedRow] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[ExtractedRow]:
        """The rows of one kind."""
        return [row for row in self.rows if row.kind == kind]


class HtmlSpecError(ValueError):
    """A spec that cannot apply to a page (e.g. a selector lexbor refuses)."""


# ---- decoding ---------------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.I)
# The WHATWG Encoding Standard: browsers decode these labels as windows-1252, a superset.
_AS_WINDOWS_1252 = {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii"}


def charset_of(body: bytes, content_type: str | None = None) -> str | None:
    """The declared charset: the Content-Type header's, else the page's `<meta>` one."""
    if content_type and (match := _HEADER_CHARSET.search(content_type)):
        return match.group(1).lower()
    if match := _META_CHARSET.search(body[:4096]):
        return match.group(1).decode("ascii").lower()
    return None


def decode_html(body: bytes, content_type: str | None = None, default: str | None = None) -> str:
    """Decode a page as a browser would: the declared charset (the header's, else the
    `<meta>`'s), else `default` (what the source is known to send), else UTF-8, else
    windows-1252; ISO-8859-1 is read as windows-1252."""
    if body.startswith(b"\xef\xbb\xbf"):
        return body[3:].decode("utf-8", errors="replace")
    declared = charset_of(body, content_type) or (default.lower() if default else None)
    if declared:
        encoding = "cp1252" if declared in _AS_WINDOWS_1252 else declared
        try:
            return body.decode(encoding, errors="replace")
        except LookupError:
            pass  # an unknown label: sniff as if none were given
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp1252", errors="replace")


# ---- reading ----------------------------------------------------------------------------------


def node_lines(node: LexborNode) -> list[str]:
    """The node's text as lines (`<br>` and block ends break lines; no-break spaces become
    spaces; blank lines dropped)."""
    parts: list[str] = []
    for child in node.traverse(include_text=True):
        if child.tag == "-text":
            parts.append(child.text(deep=False) or "")
        elif child.tag in ("br", "p", "div", "tr", "li"):
            parts.append("\n")
    text = "".join(parts).replace("\xa0", " ")
    return [" ".join(line.split()) for line in text.split("\n") if line.strip()]


def _select(node: LexborNode, css: str) -> LexborNode | None:
    try:
        return node.css_first(css)
    except Exception as exc:  # noqa: BLE001 - lexbor raises plain exceptions for bad selectors
        raise HtmlSpecError(f"selector {css!r}: {exc}") from None


def _raw(node: LexborNode | None, spec: FieldSpec) -> str | list[str] | None:
    if node is not None and spec.css:
        node = _select(node, spec.css)
    if node is None:
        return None
    if spec.attr:
        return node.attributes.get(spec.attr)
    lines = node_lines(node)
    if spec.type == "lines" and spec.pattern is None and spec.line is None:
        return lines
    if spec.line is not None:
        try:
            return lines[spec.line]
        except IndexError:
            return None
    return "\n".join(lines)


def _convert(text: str, spec: FieldSpec) -> Any:
    if spec.type == "int":
        return int(text.replace(",", "").strip())
    if spec.type == "decimal":
        try:
            return Decimal(text.replace(",", "").strip())
        except InvalidOperation:
            raise ValueError(f"not a decimal: {text!r}") from None
    if spec.type == "date":
        return datetime.strptime(text.strip(), spec.date_format).date()
    if spec.type == "lines":
        return [line for line in text.split("\n") if line]
    return text


def read_field(node: LexborNode | None, spec: FieldSpec) -> Any:
    """One value per `spec` from `node` (None when absent and not required); raises ValueError
    saying what is missing or malformed."""
    raw = _raw(node, spec)
    if isinstance(raw, list):
        return raw
    if raw is not None and spec.pattern is not None:
        match = re.search(spec.pattern, raw, re.M)
        if match is None and (spec.required or (spec.strict and raw.strip())):
            raise ValueError(f"{raw[:60]!r} does not match {spec.pattern!r}")
        raw = match.group(spec.group) if match else None
    if raw is None or raw == "":
        if spec.required:
            raise ValueError("missing")
        return None
    return _convert(raw, spec)


def _read_all(fields: dict[str, FieldSpec], node_for: Any) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    errors: list[str] = []
    for name, spec in fields.items():
        try:
            values[name] = read_field(node_for(spec), spec)
        except HtmlSpecError:
            raise
        except (ValueError, TypeError) as exc:
            values[name] = None
            errors.append(f"{name}: {exc}")
    return values, errors


# ---- tables as grids --------------------------------------------------------------------------


def own_rows(table: LexborNode) -> list[LexborNode]:
    """The table's own rows (not those of tables nested in its cells)."""
    rows = []
    for child in table.iter():
        if child.tag == "tr":
            rows.append(child)
        elif child.tag in ("thead", "tbody", "tfoot"):
            rows.extend(c for c in child.iter() if c.tag == "tr")
    return rows


def _span(cell: LexborNode, name: str) -> int:
    try:
        return max(1, min(int(cell.attributes.get(name) or 1), 1000))
    except ValueError:
        return 1


def table_grid(table: LexborNode) -> list[tuple[LexborNode, list[LexborNode], list[LexborNode]]]:
    """Each row with its own cells and its cells laid out on the grid (rowspan and colspan
    expanded: a cell spanning two columns is at both positions)."""
    pending: dict[int, tuple[LexborNode, int]] = {}  # column -> (cell, rows still covered)
    laid_out = []
    for row in own_rows(table):
        own = [c for c in row.iter() if c.tag in ("td", "th")]
        grid: list[LexborNode] = []
        queue = list(own)
        column = 0
        while queue or any(col >= column for col in pending):
            if column in pending:
                cell, left = pending[column]
                grid.append(cell)
                if left <= 1:
                    del pending[column]
                else:
                    pending[column] = (cell, left - 1)
                column += 1
                continue
            if not queue:
                break
            cell = queue.pop(0)
            rows_down = _span(cell, "rowspan")
            for offset in range(_span(cell, "colspan")):
                grid.append(cell)
                if rows_down > 1:
                    pending[column + offset] = (cell, rows_down - 1)
            column += _span(cell, "colspan")
        laid_out.append((row, own, grid))
    return laid_out


def _text_matches(kind: RowKind, own: list[LexborNode], grid: list[LexborNode]) -> bool:
    if kind.when_column is None or kind.when_pattern is None:
        return True
    if kind.when_column >= len(grid):
        return False
    cell = grid[kind.when_column]
    if not any(cell is mine for mine in own):
        return False
    return re.search(kind.when_pattern, "\n".join(node_lines(cell)), re.M) is not None


def _kind_of(own: list[LexborNode], grid: list[LexborNode], kinds: list[RowKind]) -> RowKind | None:
    for kind in kinds:
        if len(own) < kind.min_cells or not _text_matches(kind, own, grid):
            continue
        if kind.when is None or any(_select(cell, kind.when) for cell in own):
            return kind
    return None


def list_grid(container: LexborNode, rows: str) -> list[tuple[LexborNode, list, list]]:
    """Each element matching `rows` inside `container`, its element children as its cells."""
    try:
        found = container.css(rows)
    except Exception as exc:  # noqa: BLE001 - lexbor raises plain exceptions for bad selectors
        raise HtmlSpecError(f"selector {rows!r}: {exc}") from None
    laid_out = []
    for row in found:
        cells = [child for child in row.iter() if child.tag and not child.tag.startswith("-")]
        laid_out.append((row, cells, cells))
    return laid_out


def _read_table(table: LexborNode, spec: TableSpec, page: ExtractedPage) -> None:
    latest: dict[str, int] = {}
    grid_rows = list_grid(table, spec.rows) if spec.rows else table_grid(table)
    for row, own, grid in grid_rows:
        if (not own and not spec.rows) or (spec.skip and _select(row, spec.skip) is not None):
            continue
        kind = _kind_of(own, grid, spec.kinds)
        if kind is None:
            continue

        def node_for(field_spec: FieldSpec, grid=grid, row=row) -> LexborNode | None:
            if field_spec.column is None:
                return row
            return grid[field_spec.column] if field_spec.column < len(grid) else None

        values, errors = _read_all(kind.fields, node_for)
        parent = latest.get(kind.parent) if kind.parent else None
        if kind.parent and parent is None:
            errors.append(f"no {kind.parent} row before this {kind.name} row")
        index = len(page.rows)
        page.rows.append(ExtractedRow(kind.name, values, errors, row.html or "", index, parent))
        latest[kind.name] = index


def extract(html: str, spec: PageSpec | dict[str, Any]) -> ExtractedPage:
    """Read a decoded page by `spec` (a `PageSpec` or the dict it validates from)."""
    spec = spec if isinstance(spec, PageSpec) else PageSpec.model_validate(spec)
    tree = LexborHTMLParser(html)
    root = tree.root
    values, errors = _read_all(spec.fields, lambda _spec: root)
    page = ExtractedPage(values, errors)
    for table_spec in spec.tables:
        try:
            tables = tree.css(table_spec.tables)
        except Exception as exc:  # noqa: BLE001
            raise HtmlSpecError(f"selector {table_spec.tables!r}: {exc}") from None
        for table in tables:
            _read_table(table, table_spec, page)
    return page
