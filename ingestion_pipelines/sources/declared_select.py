"""Which recorded records a request asks for: the replay of a declared source served per request
(``replay.select`` in its defs.yaml), so one recording serves every request of a `for_each`
source (one per stock) and every window of a partitioned one, as the real filter would::

    replay:
      file: vndirect_stock_prices.json
      select:
        q: {clauses: "~"}   # VNDIRECT's filter: code:FPT,VNM~date:gte:2024-01-02~date:lte:...
        symbol: code        # ?symbol=FPT (or FPT,VNM) keeps the records whose `code` is one of them

A rule is the request parameter (in the query, or the JSON body of a POST) and either the record
path it must equal (a comma-separated or list value: one of them) or ``{clauses: <separator>}``: a
filter of ``path:value[,value...]`` (one of), ``path:gte:<v>``, ``path:lte:<v>``, ``path:gt:<v>``
and ``path:lt:<v>`` clauses, compared as numbers when both sides are numbers, else as text (ISO
dates order as text; a record's ISO time is compared on its first characters). A record without
the field a clause names does not match. A parameter the request leaves out selects nothing away.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ingestion_pipelines.sources.paginators import at_path

_ORDERS = {
    "gte": lambda a, b: a >= b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "lt": lambda a, b: a < b,
}


class SelectError(ValueError):
    """A request parameter the rule cannot read (the replay answers 400, as the service does)."""


def _values(sent: Any) -> list[str]:
    if isinstance(sent, list | tuple):
        return [str(v) for v in sent]
    return [v for v in str(sent).split(",") if v]


def _number(text: str) -> Decimal | None:
    try:
        return Decimal(text)
    except (InvalidOperation, ValueError):
        return None


def _compare(value: Any, order: str, bound: str) -> bool:
    if value is None:
        return False
    text = str(value)
    left, right = _number(text), _number(bound)
    if left is None or right is None:
        left, right = text[: len(bound)], bound  # ISO dates and times order as text
    return _ORDERS[order](left, right)


def clauses(raw: str, separator: str) -> list[tuple[str, str | None, list[str]]]:
    """``code:FPT~date:gte:2024-01-02`` → [("code", None, ["FPT"]), ("date", "gte", [...])]."""
    parsed = []
    for clause in filter(None, str(raw).split(separator)):
        path, sep, value = clause.partition(":")
        if not sep or not path:
            raise SelectError(f"invalid clause {clause!r}")
        order, _, bound = value.partition(":")
        if order in _ORDERS and bound:
            parsed.append((path, order, [bound]))
        else:
            parsed.append((path, None, _values(value)))
    return parsed


def _matches(record: Any, path: str, order: str | None, values: list[str]) -> bool:
    value = at_path(record, path)
    if order is not None:
        return _compare(value, order, values[0])
    return value is not None and str(value) in values


def selected(records: list[Any], rules: Mapping[str, Any], params: Mapping[str, Any]) -> list:
    """The records `params` ask for under `rules` (all of them when no rule applies)."""
    tests: list[tuple[str, str | None, list[str]]] = []
    for name, rule in rules.items():
        sent = params.get(name)
        if sent in (None, "", []):
            continue
        if isinstance(rule, Mapping):
            tests.extend(clauses(sent, str(rule.get("clauses", "~"))))
        else:
            tests.append((str(rule), None, _values(sent)))
    if not tests:
        return records
    return [r for r in records if all(_matches(r, *test) for test in tests)]


def request_params(query: Mapping[str, str], body: Any) -> dict[str, Any]:
    """A request's parameters: its query, and its JSON body's top-level values (a POST)."""
    params: dict[str, Any] = dict(query)
    if isinstance(body, Mapping):
        params.update(body)
    return params


def total_paths(source) -> list[str]:
    """Where a declared source's body says its total record count (its `totals`, its paginator's
    `total`): a selected answer says the count it selected there."""
    paths = [source.spec.totals, (source.spec.paginator or {}).get("total")]
    return sorted({p for p in paths if isinstance(p, str) and p})


def with_totals(body: Any, paths: list[str], count: int) -> Any:
    """`body` with the total at each of `paths` (present in it) set to `count`."""
    if not isinstance(body, dict):
        return body
    body = dict(body)
    for path in paths:
        *parents, last = path.split(".")
        node = body
        for part in parents:
            if not isinstance(node.get(part), dict):
                break
            node[part] = dict(node[part])
            node = node[part]
        else:
            if last in node:
                node[last] = count
    return body
