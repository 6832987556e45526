"""HTML bodies of sources declared in YAML (``format: html``): a page's table or list rows
become records through `browser.html_records` (selectolax), then go through the declaration's
`fields` and `table` like JSON records do, so exact decimals, bounds, dead letters and the reject
threshold hold unchanged.

The declaration's ``html`` block (what `HtmlBody` validates)::

    format: html
    html:
      encoding: iso-8859-1       # when neither the Content-Type nor the page's <meta> says one
      tables: "table.prices"     # the tables (or, with `rows`, the list containers) to read
      rows: null                 # css of a list's rows (`li`); unset: the tables' own `<tr>`
      skip: th                   # rows containing this are not records (headers)
      when_column: 1             # a row is a record when its cell at this grid column ...
      when_pattern: '^\\d'        # ... matches (also `when`: a selector its cells contain;
      min_cells: 4               #      `min_cells`: at least that many cells of its own)
      cells:                     # record key -> how it is read (html_records.FieldSpec)
        symbol: {column: 0, required: true}
        close: {column: 3, pattern: '^([\\d.,]+)'}
      page:                      # read once from the page, added to every record
        updated: {css: "td.updated", pattern: 'updated (\\S+)'}
      wait_for: "table.prices td"  # with `fetch: browser`: what JavaScript must have built

Cells are read as text by default: the table's column types make them exact decimals, integers
or dates (a `type` on a cell converts earlier). Keys not named by `fields` are the cells' own
names, so ``cells: {frequency_mhz: ...}`` fills column ``frequency_mhz``. A row that cannot be
read (a required cell missing, a `strict` pattern not matched) is a dead letter holding its
errors and its HTML; the page's own `required` fields missing fail the page. `error`, `totals`
and the paginators' `total` read the page fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from ingestion_pipelines.browser.html_records import (
    ExtractedPage,
    FieldSpec,
    HtmlSpecError,
    PageSpec,
    RowKind,
    TableSpec,
    decode_html,
    extract,
)
from ingestion_pipelines.sources.base import Expected, SourceError
from ingestion_pipelines.sources.paginators import at_path

if TYPE_CHECKING:
    from ingestion_pipelines.sources.base import Record
    from ingestion_pipelines.sources.declared import DeclaredSource
    from ingestion_pipelines.sources.declared_spec import RestSourceSpec

# The key under which a row that could not be read carries its errors and HTML to the record
# model, which rejects it (so the runner dead-letters it with that reason); no page sends it.
UNREADABLE = "__unreadable_row__"
# What the replay serves a recorded page as: no charset, as many sites (LyngSat) send, so the
# page's own `<meta>` (or the declared `encoding`) decides, as it does in production.
HTML_CONTENT_TYPE = "text/html"


class HtmlBody(BaseModel):
    """How the records of an HTML page are read (the declaration's ``html``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    encoding: str | None = None
    tables: str = "table"
    rows: str | None = None
    skip: str | None = None
    when: str | None = None
    when_column: int | None = Field(None, ge=0)
    when_pattern: str | None = None
    min_cells: int | None = Field(None, ge=0)
    cells: dict[str, FieldSpec]
    page: dict[str, FieldSpec] = {}
    wait_for: str | None = None  # fetch: browser: css the rendered page must show first

    def page_spec(self) -> PageSpec:
        """The `html_records` spec: the page fields, one table spec of one row kind."""
        kind = RowKind(
            name="record",
            when=self.when,
            when_column=self.when_column,
            when_pattern=self.when_pattern,
            min_cells=self.min_cells if self.min_cells is not None else (0 if self.rows else 1),
            fields=self.cells,
        )
        table = TableSpec(tables=self.tables, rows=self.rows, skip=self.skip, kinds=[kind])
        return PageSpec(fields=self.page, tables=[table])


def read_page(html: HtmlBody, body: bytes, content_type: str | None) -> ExtractedPage:
    """The page's fields and rows (a `SourceError` when the page itself is unreadable)."""
    try:
        page = extract(decode_html(body, content_type, html.encoding), html.page_spec())
    except HtmlSpecError as exc:
        raise SourceError(f"the html declaration does not apply: {exc}") from None
    if page.errors:
        raise SourceError(f"the page is unreadable: {'; '.join(page.errors)}")
    return page


def page_records(html: HtmlBody, page: ExtractedPage) -> list[dict[str, Any]]:
    """One raw record per row: the page fields, then the row's cells; a row that could not be
    read also carries its errors and HTML under `UNREADABLE`."""
    records = []
    for row in page.rows:
        record = {**page.values, **row.values}
        if not row.ok:
            record[UNREADABLE] = {"errors": row.errors, "html": row.html}
        records.append(record)
    return records


def parse_html(source: DeclaredSource, response, request) -> Iterator[Any]:
    """`DeclaredSource.parse` for ``format: html``: the page's records, the source's total from
    the page fields, then the next page."""
    spec = source.spec
    page = read_page(spec.html, response.content, response.headers.get("content-type"))
    if spec.error and at_path(page.values, spec.error):
        raise SourceError(f"{spec.error}: {at_path(page.values, spec.error)}")
    if spec.totals:
        total = at_path(page.values, spec.totals)
        if total is None:
            raise SourceError(f"the page has no total at {spec.totals}")
        yield Expected(request.meta.get("family", source.worker_id), int(total))
    records = page_records(spec.html, page)
    for item in records:
        if source.stamped:
            item = {**item, **dict.fromkeys(source.stamped, source.started_at)}
        yield item
    following = source.paginator.follow(request, response, page.values, records)
    if following is not None:
        yield following


def _refuse_unreadable(cls, data: Any) -> Any:
    if isinstance(data, dict) and data.get(UNREADABLE):
        raise ValueError(f"row unreadable: {'; '.join(data[UNREADABLE]['errors'])}")
    return data


def record_for_format(spec: RestSourceSpec, model: type[Record]) -> type[Record]:
    """The record model of a declaration's body format: for HTML, one that also rejects the
    rows the page could not be read into (with their errors as the reason)."""
    if spec.format != "html":
        return model
    return create_model(
        model.__name__,
        __base__=model,
        __doc__=model.__doc__,
        __validators__={"_readable": model_validator(mode="before")(_refuse_unreadable)},
    )


def recorded_html(spec: RestSourceSpec, body: bytes) -> list[dict[str, Any]]:
    """The records a recorded page serves (those the page could be read into), for the replay's
    standard tests."""
    page = read_page(spec.html, body, None)
    return [r for r in page_records(spec.html, page) if UNREADABLE not in r]


def break_page(payload: Any, bad: dict[str, Any]) -> None:
    """Makes one row of a recorded page unreadable for the standard tests: `bad["replace"]` is
    ``[old, new]``, text of the page replaced once (written as the page's own bytes, Latin-1
    pages included: what is replaced is what the page holds)."""
    old, new = bad["replace"]
    encoding = "utf-8" if _is_utf8(payload.body) else "cp1252"  # else: a legacy 8-bit page
    before, after = old.encode(encoding), new.encode(encoding)
    if before not in payload.body:
        raise ValueError(f"bad_record.replace: {old!r} is not in the recorded page")
    payload.body = payload.body.replace(before, after, 1)


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
