"""Readable text for the control-plane commands' results (the `--json` output is the data)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def ago(iso: str | None, now: datetime | None = None) -> str:
    """'2026-01-31 10:00:00 UTC (3 min ago)' for an ISO time; '-' for None."""
    if not iso:
        return "-"
    when = datetime.fromisoformat(iso)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    seconds = (now - when).total_seconds()
    text = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{text} ({span(abs(seconds))} {'ago' if seconds >= 0 else 'from now'})"


def span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    return f"{int(seconds // 86400)} d {int(seconds % 86400 // 3600)} h"


def records(values: dict[str, int] | None) -> str:
    if not values:
        return "-"
    order = ("fetched", "inserted", "updated", "unchanged", "rejected")
    return ", ".join(f"{values[k]} {k}" for k in order if k in values)


def market_line(market: dict[str, Any], now: datetime | None = None) -> str:
    """The calendar's word on a worker: market open or why silence is expected, next session,
    and the latest day whose data is due."""
    bits = []
    if "open" in market:
        if market["open"]:
            bits.append(
                f"{market['exchange']} open ({market['reason']}) until {market['session_ends']}"
            )
        else:
            bits.append(
                f"{market['exchange']} closed, silence expected ({market['reason']}); "
                f"next session {ago(market['next_session'], now)}"
            )
    if "latest_complete_day" in market:
        bits.append(f"latest complete trading day {market['latest_complete_day']}")
    if "latest_due_day" in market:
        bits.append(f"latest day due {market['latest_due_day']}")
    return "; ".join(bits)


def status_table(workers: list[dict[str, Any]], now: datetime | None = None) -> str:
    lines = []
    for w in workers:
        switch = w["switch"]
        state = "on" if w["enabled"] else "off"
        if w.get("config_enabled") is False:
            state += " (enabled=false in config)"
        lines.append(f"{w['worker_id']}  [{w['kind']}]  {state}")
        lines.append(f"  {switch['type']:<9} {switch['name']}: {switch['status']}")
        schedule = w.get("schedule")
        if schedule:
            lines.append(
                f"  cron      {schedule['cron']} ({schedule['timezone']}); next tick "
                f"{ago(schedule['next_tick'], now)}"
            )
        run = w.get("last_run")
        if run:
            lines.append(
                f"  last run  {run['status']} {ago(run['started_at'], now)}, took "
                f"{span(run['duration_s'])}  [{run['run_id'][:8]}]"
            )
        else:
            lines.append("  last run  -")
        if w.get("runs_in_progress") or w.get("runs_queued"):
            lines.append(f"  now       {w['runs_in_progress']} running, {w['runs_queued']} queued")
        mat = w.get("last_materialization")
        if mat:
            part = f" partition {mat['partition']}," if mat.get("partition") else ""
            lines.append(f"  data      {ago(mat['at'], now)},{part} {records(mat['records'])}")
        market = w.get("market")
        if market:
            lines.append(f"  market    {market_line(market, now)}")
        feed = w.get("feed")
        if feed:
            bits = [feed.get("state", "?")]
            if feed.get("heartbeat_age_s") is not None:
                bits.append(f"heartbeat {span(feed['heartbeat_age_s'])} ago")
            if feed.get("connected_since"):
                bits.append(f"connected since {feed['connected_since']}")
            if feed.get("lag_s") is not None:
                bits.append(f"lag {span(feed['lag_s'])}")
            if feed.get("messages_per_s") is not None:
                bits.append(f"{feed['messages_per_s']} msg/s")
            if feed.get("last_error") or feed.get("error"):
                bits.append(f"error: {feed.get('last_error') or feed.get('error')}")
            lines.append(f"  feed      {'; '.join(bits)}")
            if feed.get("books") is not None:
                lines.append(f"  books     {book_line(feed)}")
    return "\n".join(lines)


def book_line(feed: dict[str, Any]) -> str:
    """Order books in sync and their resynchronisations (by reason, and the last one)."""
    line = (
        f"{feed.get('books_synced', 0)}/{feed['books']} in sync, {feed.get('resyncs', 0)} resyncs"
    )
    by_reason = feed.get("resyncs_by_reason") or {}
    if by_reason:
        line += " (" + ", ".join(f"{n} {why}" for why, n in sorted(by_reason.items())) + ")"
    last = feed.get("last_resync")
    if last:
        line += f"; last {last.get('symbol')} {last.get('reason')} at {last.get('at')}"
    return line


def switch_result(result: dict[str, Any]) -> str:
    s = result["switch"]
    return f"{result['worker_id']}: {s['type']} {s['name']} is {s['status']}"


def run_result(result: dict[str, Any]) -> str:
    head = f"{result['worker_id']}: run {result['run_id']} ({result['job']}"
    head += f", partition {result['partition']})" if result.get("partition") else ")"
    lines = [f"{head}: {result['status']}"]
    if result.get("duration_s") is not None:
        lines.append(f"  took {span(result['duration_s'])}; records: {records(result['records'])}")
    if result.get("error"):
        lines.append(f"  error: {result['error']}")
    return "\n".join(lines)


def backfill_result(result: dict[str, Any]) -> str:
    lines = [
        f"{result['worker_id']}: backfill {result['backfill_id']} "
        f"({result['from']}..{result['to']}): {result['status']}"
    ]
    if result.get("requested"):
        asked = result["requested"]
        lines.append(f"  (asked {asked['from']}..{asked['to']}: fitted to the worker's partitions)")
    for run in result.get("runs") or []:
        lines.append(f"  run {run['run_id']}: {run['status']}, took {span(run['duration_s'])}")
    if result.get("error"):
        lines.append(f"  error: {result['error']}")
    if result.get("run_error"):
        lines.append(f"  run error: {result['run_error']}")
    return "\n".join(lines)


def stats_result(result: dict[str, Any]) -> str:
    lines = [
        f"{result['worker_id']} since {result['since']}: {result['runs']} runs, "
        f"{result['succeeded']} succeeded, {result['failed']} failed"
        + (f", {result['canceled']} canceled" if result.get("canceled") else "")
        + (f", {result['in_progress']} in progress" if result.get("in_progress") else ""),
        f"  last success: {result.get('last_success_at') or '-'}",
    ]
    d = result.get("duration_s")
    if d:
        lines.append(
            f"  duration: mean {span(d['mean'])}, median {span(d['median'])}, max {span(d['max'])}"
        )
    for key, spread in (result.get("records_per_run") or {}).items():
        if spread:
            lines.append(
                f"  records {key:<9} sum {spread['sum']:g}, mean {spread['mean']:g} per run"
            )
    errors = result.get("recent_errors") or []
    if errors:
        lines.append("  recent errors:")
        for e in errors:
            lines.append(f"    {e['at']} [{e['run_id'][:8]}] {e['error'] or '(no message)'}")
    return "\n".join(lines)


def health_result(result: dict[str, Any]) -> str:
    lines = [f"{'healthy' if result['healthy'] else 'UNHEALTHY'}"]
    width = max((len(c["name"]) for c in result["checks"]), default=0)
    for c in result["checks"]:
        lines.append(f"  {'ok  ' if c['ok'] else 'FAIL'}  {c['name']:<{width}}  {c['detail']}")
    return "\n".join(lines)


def config_result(result: dict[str, Any]) -> str:
    scope = f"{result['worker_id']}.{result['key']}"
    if result["status"] != "SUCCESS":
        return (
            f"config {scope}: run {result['run_id']} {result['status']}: "
            f"{result.get('error') or 'no error message'}"
        )
    text = f"config {scope} {result['action']}: {result.get('old')} -> {result.get('new')}"
    text += f"  (run {result['run_id']}, by {result['requested_by']})"
    if result.get("reloaded"):
        text += f"\n  {result['reloaded']}"
    return text
