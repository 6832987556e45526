"""Templates of a declaration rendered per request: ``{settings.<key>}``, ``{window.<name>}``,
``{row.<column>}``, ``{run.day}`` (the ICT day the run started), and window rules
(``{days_back: {...}}``)."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from ingestion_pipelines.sources.base import SourceError
from ingestion_pipelines.sources.declared_spec import Strict

# ``{window.start}``; a date may name its format after a colon: ``{window.start:%Y%m%d}``
_PLACEHOLDER = re.compile(r"\{(settings|window|row|run)\.([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]+))?\}")

# ---- rendering -------------------------------------------------------------------------------


def render(value: Any, context: dict[str, Any]) -> Any:
    """A template rendered: a string that is one placeholder gives its value as is (None stays
    None), placeholders inside text are formatted; other values are returned unchanged."""
    if not isinstance(value, str) or "{" not in value:
        return value
    whole = _PLACEHOLDER.fullmatch(value)
    if whole:
        return _lookup(context, whole[1], whole[2], whole[3])
    return _PLACEHOLDER.sub(lambda m: str(_lookup(context, m[1], m[2], m[3])), value)


def _lookup(context: dict[str, Any], scope: str, name: str, fmt: str | None = None) -> Any:
    holder = context.get(scope)
    if holder is None:
        raise SourceError(f"template {{{scope}.{name}}}: no {scope} here")
    value = holder.get(name) if isinstance(holder, dict) else getattr(holder, name)
    if isinstance(value, date):
        return value.strftime(fmt) if fmt else value.isoformat()
    if fmt:
        raise SourceError(f"template {{{scope}.{name}:{fmt}}}: a format applies to dates only")
    return value


def render_body(value: Any, context: dict[str, Any]) -> Any:
    """A JSON body rendered: every string inside it (lists and mappings walked) as a template."""
    if isinstance(value, dict):
        return {k: render_body(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_body(v, context) for v in value]
    return render(value, context)


def render_query(value: Any, context: dict[str, Any]) -> Any:
    """A query value rendered: a template (`render`) or a window rule (``{days_back: {...}}``)."""
    if isinstance(value, dict):
        return WindowRule.model_validate(value).value(context.get("window"))
    return render(value, context)


class DaysBack(Strict):
    """The window's day count back from today, or `then` beyond `more_than` days."""

    more_than: int | None = None
    then: Any = None


class WindowRule(Strict):
    """A query value computed from the run's window (``{days_back: {more_than: 60, then: 0}}``)."""

    days_back: DaysBack

    def value(self, window: dict[str, Any] | None) -> Any:
        """The value for this window (a window is needed)."""
        if window is None:
            raise SourceError("a days_back query needs a partitioned source")
        days = window["days_back"]
        rule = self.days_back
        return rule.then if rule.more_than is not None and days > rule.more_than else days


def _window_context(window) -> dict[str, Any] | None:
    if window is None:
        return None
    today = datetime.now(ZoneInfo(window.timezone)).date()
    return {
        "start": window.start,
        "end": window.end,
        "last_day": window.last_day,
        "days": window.days,
        "days_back": max((today - window.start).days + 1, 1),
        **_epoch_ms(window),
    }


def _epoch_ms(window) -> dict[str, int]:
    """The window in epoch milliseconds: `start_ms` (its first day's midnight in its timezone),
    `end_ms` (exclusive, as `end`) and `last_ms` (its last millisecond, for inclusive ends)."""
    zone = ZoneInfo(window.timezone)
    start = int(datetime.combine(window.start, time(0), zone).timestamp() * 1000)
    end = int(datetime.combine(window.end, time(0), zone).timestamp() * 1000)
    return {"start_ms": start, "end_ms": end, "last_ms": end - 1}
