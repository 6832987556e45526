"""How a declared source walks a paged API: small classes chosen by name in its defs.yaml.

    paginator: {kind: page_number, param: page, total: totalElements}
    paginator: {kind: page_number, param: page, total: data.total, where: body}   # a POST body

Every paginator follows pages by what the server really returned (the records it counted, the
cursor or link it sent), never by the page size asked for: a server that caps `size` below what
was asked is still read to the end. `firsts()` turns a run's first request into the requests
that start it (one, or one per date window); `follow()` says the next page, or None.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from ingestion_pipelines.sources.base import Request, Window


def at_path(body: Any, path: str | None) -> Any:
    """The value at a dotted path (``data.items``; ``""`` or None: the body itself)."""
    if not path:
        return body
    value = body
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


@dataclass(frozen=True)
class Paginator:
    """One request per run, no pages (``kind: none``). `where` the paging parameters go: the
    query (default) or the JSON body (an API paged by its POST body)."""

    kind: ClassVar[str] = "none"
    where: str = "query"

    def __post_init__(self) -> None:
        if self.where not in ("query", "body"):
            raise ValueError(f"paginator where: {self.where!r} (query or body)")

    def _with(self, request: Request, params: dict[str, Any], **meta: Any) -> Request:
        """`request` with the paging `params` set (in the query or the body) and `meta` noted."""
        meta = {**request.meta, **meta}
        if self.where == "body":
            return replace(request, json={**(request.json or {}), **params}, meta=meta)
        return replace(request, params={**(request.params or {}), **params}, meta=meta)

    def firsts(self, request: Request, window: Window | None) -> Iterator[Request]:
        """The requests a first request starts as."""
        yield request

    def follow(self, request: Request, response, body: Any, records: list) -> Request | None:
        """The next page after `request`, or None when the source is read to its end."""
        return None


@dataclass(frozen=True)
class PageNumber(Paginator):
    """``page=1, 2, ...`` until an empty page, the source's `total` records counted, or
    `max_pages` pages (``kind: page_number``)."""

    kind: ClassVar[str] = "page_number"
    param: str = "page"
    start: int = 1
    total: str | None = None  # dotted path of the source's total record count
    max_pages: int | None = None

    def firsts(self, request, window):
        """See `Paginator.firsts`."""
        yield self._with(request, {self.param: self.start}, page=self.start, received=0)

    def follow(self, request, response, body, records):
        """See `Paginator.follow`."""
        received = request.meta.get("received", 0) + len(records)
        total = at_path(body, self.total) if self.total else None
        page = request.meta["page"] + 1
        if not records or (total is not None and received >= int(total)):
            return None
        if self.max_pages is not None and page - self.start >= int(self.max_pages):
            return None
        return self._with(request, {self.param: page}, page=page, received=received)


@dataclass(frozen=True)
class OffsetLimit(Paginator):
    """``offset=0, then offset + the records received`` until an empty page or the source's
    `total` (``kind: offset``)."""

    kind: ClassVar[str] = "offset"
    param: str = "offset"
    total: str | None = None

    def firsts(self, request, window):
        """See `Paginator.firsts`."""
        yield self._with(request, {self.param: 0}, offset=0)

    def follow(self, request, response, body, records):
        """See `Paginator.follow`."""
        offset = request.meta["offset"] + len(records)
        total = at_path(body, self.total) if self.total else None
        if not records or (total is not None and offset >= int(total)):
            return None
        return self._with(request, {self.param: offset}, offset=offset)


@dataclass(frozen=True)
class Cursor(Paginator):
    """The cursor the body carries at `path`, sent back as `param`, until there is none
    (``kind: cursor``)."""

    kind: ClassVar[str] = "cursor"
    path: str = "next_cursor"
    param: str = "cursor"

    def follow(self, request, response, body, records):
        """See `Paginator.follow`."""
        cursor = at_path(body, self.path)
        if cursor in (None, "") or not records:
            return None
        return self._with(request, {self.param: cursor})


_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


@dataclass(frozen=True)
class LinkHeader(Paginator):
    """The ``Link: <url>; rel="next"`` header the server sends (``kind: link_header``)."""

    kind: ClassVar[str] = "link_header"

    def follow(self, request, response, body, records):
        """See `Paginator.follow`."""
        match = _NEXT_LINK.search(response.headers.get("link") or "")
        if match is None or not records:
            return None
        return replace(request, path=match.group(1), params=None)


@dataclass(frozen=True)
class DateWindows(Paginator):
    """The run's window cut into windows of `days` days, one request each, `start_param` and
    `end_param` (inclusive last day) in ISO form (``kind: date_windows``)."""

    kind: ClassVar[str] = "date_windows"
    days: int = 30
    start_param: str = "from"
    end_param: str = "to"

    def firsts(self, request, window):
        """See `Paginator.firsts`."""
        if window is None:
            yield request
            return
        start = window.start
        while start < window.end:
            end = min(start + timedelta(days=self.days), window.end)
            last = (end - timedelta(days=1)).isoformat()
            yield self._with(request, {self.start_param: start.isoformat(), self.end_param: last})
            start = end


@dataclass(frozen=True)
class TimeCursor(Paginator):
    """Time-ordered records read from a start time on (``kind: time_cursor``; Binance's klines:
    ``startTime``/``endTime``/``limit``), with `days`: one such request per `days` of the run's
    window (the bounds its own, in epoch ms, whatever the query templated): the next request starts at the time of the last record
    actually returned (at `path` in it) plus `step`, until an empty answer or a start past the
    request's own `end_param`. A server capping `limit` below what was asked is still read to
    the end; one that does not move forward fails the run rather than loop."""

    kind: ClassVar[str] = "time_cursor"
    param: str = "startTime"
    end_param: str | None = "endTime"
    path: str = "0"  # where a record holds its time (epoch units as sent)
    step: int = 1  # the least a next record's time can be after the last one's
    days: int | None = None  # a run's window cut into windows of this many days (epoch ms)

    def firsts(self, request, window):
        """One request per `days` of the window (its bounds in epoch ms, the end inclusive), so
        that a long backfill's windows run side by side and resume one by one; else as is."""
        if window is None or self.days is None or self.end_param is None:
            yield request
            return
        zone = ZoneInfo(window.timezone)
        start = window.start
        while start < window.end:
            end = min(start + timedelta(days=int(self.days)), window.end)
            first, stop = (
                int(datetime.combine(d, time(0), zone).timestamp() * 1000) for d in (start, end)
            )
            yield self._with(request, {self.param: first, self.end_param: stop - 1})
            start = end

    def follow(self, request, response, body, records):
        """See `Paginator.follow`."""
        if not records:
            return None
        last = at_path(records[-1], self.path)
        if last is None or isinstance(last, bool) or not str(last).lstrip("-").isdigit():
            raise ValueError(f"time_cursor: the last record has no time at {self.path!r}")
        following = int(last) + int(self.step)
        params = request.params or {}
        end = params.get(self.end_param) if self.end_param else None
        if end not in (None, "") and following > int(end):
            return None
        sent = params.get(self.param)
        if sent not in (None, "") and following <= int(sent):
            raise ValueError(
                f"time_cursor: the answer did not move past {self.param}={sent} "
                f"(last record at {last})"
            )
        return self._with(request, {self.param: following})


PAGINATORS: dict[str, type[Paginator]] = {
    cls.kind: cls
    for cls in (Paginator, PageNumber, OffsetLimit, Cursor, LinkHeader, DateWindows, TimeCursor)
}


@dataclass(frozen=True)
class PaginatorSpec:
    """A paginator as declared: its kind and its arguments (templates not yet rendered)."""

    kind: str = "none"
    arguments: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, declared: Mapping[str, Any] | None) -> PaginatorSpec:
        """From the defs.yaml mapping (``{kind: ..., <arguments>}``); checks kind and names."""
        declared = dict(declared or {})
        kind = declared.pop("kind", "none")
        if kind not in PAGINATORS:
            raise ValueError(f"unknown paginator {kind!r} (one of {sorted(PAGINATORS)})")
        known = set(PAGINATORS[kind].__dataclass_fields__)
        unknown = set(declared) - known
        if unknown:
            raise ValueError(
                f"paginator {kind}: unknown arguments {sorted(unknown)} ({sorted(known)})"
            )
        return cls(kind, declared)

    def build(self, **rendered: Any) -> Paginator:
        """The paginator with its arguments rendered (`rendered` replaces templated ones)."""
        return PAGINATORS[self.kind](**{**self.arguments, **rendered})
