"""What a declared field does to a value besides reading it: ``value:`` (the column is set, not
read), ``map:`` (a sent value renamed), ``unit:`` (a converter of `vnmarket.units`) and the date
``format: yyyymmdd``::

    fields:
      provider: {value: SJC}                          # a constant
      fetched_at: {value: run_started_at}             # when the run started (= {run.started_at})
      as_of: {value: "{run.day}"}                     # the ICT calendar day the run started
      exchange: {value: "{settings.exchange}"}        # a setting, or {row.<column>} of for_each
      as_of: {value: "{window.start}"}                # the window (a date may take a format:
                                                      #   "{window.start:%Y%m%d}")
      kind: {value: "{list.name}"}                    # the name of the record's list
      branch: {value: "{parent.@name}"}               # the object holding the record's list
      at: {value: "{body.root.ratelist.@updated}", unit: sjc_xml_updated}   # the whole body
      index_code: {path: floor, map: {HNX: HNXINDEX}} # unmapped values stay as sent
      buy: {path: "@buy", unit: sjc_xml_price}        # "40.720" -> 40720000 (VND per tael)
      ex_date: {path: exrightDate, format: yyyymmdd}  # "20240315" -> 2024-03-15
      type:                                           # classified: the first rule met wins
        rules:
          - {when: {eventCode: "^DIV$", valuePerShare: "."}, then: cash_dividend}
          - {then: other}                             # no `when`: the fallback

A set value goes through the column's checks as a read one does (its map, unit and bounds).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator

from ingestion_pipelines.core.timezones import ICT
from ingestion_pipelines.sources.base import SourceError
from ingestion_pipelines.sources.declared_render import _lookup
from ingestion_pipelines.sources.declared_units import UNITS
from ingestion_pipelines.sources.paginators import at_path

RUN_STARTED_AT = "run_started_at"

_TEMPLATE = re.compile(r"\{(settings|window|row|run|list|parent|body)\.([^{}:]+?)(?::([^{}]+))?\}")
_RECORD_SCOPES = ("list", "parent", "body")
_RUN = ("started_at", "day")


# ---- value: templates ------------------------------------------------------------------------


def set_value(template: str, context: dict[str, Any]) -> Any:
    """The value a `value:` declaration sets for one record: ``run_started_at``, a constant, or a
    template (a whole placeholder keeps its value's type, placeholders in text are formatted).

    `context` holds the run's ``settings``, ``window``, ``row``, ``started_at`` and the record's
    ``list`` (its list's name), ``parent`` and ``body``."""
    if template == RUN_STARTED_AT:
        return context["started_at"]
    whole = _TEMPLATE.fullmatch(template)
    if whole:
        return _placeholder(context, whole)
    return _TEMPLATE.sub(lambda m: str(_placeholder(context, m)), template)


def _placeholder(context: dict[str, Any], match: re.Match) -> Any:
    scope, name, fmt = match[1], match[2], match[3]
    if scope == "run":
        if name not in _RUN:
            raise SourceError(f"{match[0]}: the run has {', '.join(_RUN)}")
        value = run_context(context["started_at"])[name]
        return value.strftime(fmt) if fmt else value
    if scope not in _RECORD_SCOPES:
        return _lookup(context, scope, name, fmt)
    if scope == "list":
        if name != "name" or context.get("list") is None:
            raise SourceError(f"{match[0]}: only {{list.name}}, with records: {{lists: ...}}")
        return context["list"]
    value = at_path(context.get(scope), name)
    if isinstance(value, date) and fmt:
        return value.strftime(fmt)
    return value


def template_scopes(template: str | None) -> set[str]:
    """The scopes a `value:` declaration reads (``run_started_at`` is ``run``'s)."""
    if template is None:
        return set()
    if template == RUN_STARTED_AT:
        return {"run"}
    return {m[1] for m in _TEMPLATE.finditer(template)}


def classified(rules: list[Any], item: Any) -> str | None:
    """The `then` of the first rule `item` meets (`RuleSpec`), or None when none does."""
    for rule in rules:
        if all(_matches(at_path(item, path), pattern) for path, pattern in rule.when.items()):
            return rule.then
    return None


def _matches(value: Any, pattern: str) -> bool:
    return value is not None and re.search(pattern, str(value)) is not None


# ---- map, unit, format -----------------------------------------------------------------------


def yyyymmdd(value: Any) -> Any:
    """``"20240315"`` (or the number 20240315) as a date; other values unchanged (a date stays,
    anything else is refused by the column's type)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and re.fullmatch(r"\d{8}", value.strip()):
        try:
            return datetime.strptime(value.strip(), "%Y%m%d").date()
        except ValueError:
            raise ValueError(f"not a date: {value!r}") from None
    return value


def converted(how: Any, value: Any) -> Any:
    """A sent value after the field's `map`, `unit` and ``format: yyyymmdd`` (None stays None)."""
    if value is None:
        return None
    if how.map is not None and str(value) in how.map:
        value = how.map[str(value)]
    if how.unit is not None:
        value = UNITS[how.unit](value)
    if how.format == "yyyymmdd":
        value = yyyymmdd(value)
    return value


def with_conversions(annotation: Any, how: Any) -> Any:
    """The column's type, converting first when the field declares a map, unit or yyyymmdd."""
    if how.map is None and how.unit is None and how.format != "yyyymmdd":
        return annotation
    return Annotated[annotation, BeforeValidator(lambda v: converted(how, v))]


def json_safe(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A `for_each` row as a request's meta holds it (JSON values, resumable from a checkpoint:
    dates as ISO text, decimals and anything else as their text)."""
    if row is None:
        return None
    return {k: _json_value(v) for k, v in row.items()}


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return value.isoformat() if isinstance(value, date) else str(value)


def run_context(started_at: datetime) -> dict[str, Any]:
    """What ``{run.<name>}`` reads: `started_at` (UTC) and `day`, its ICT calendar day."""
    return {"started_at": started_at, "day": started_at.astimezone(ICT).date()}
