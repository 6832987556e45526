"""The live relay's `/metrics` in the Prometheus text format (version 0.0.4)."""

from __future__ import annotations

from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _family(name: str, kind: str, help_text: str, samples: list[tuple[str, Any]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {value}" for labels, value in samples]
    return lines


def render(hub: Any) -> str:
    """Clients, subscriptions, messages relayed and dropped, refusals by reason, Redis state."""
    refused = sorted(hub.refused.items()) or [("token", 0)]
    lines = [
        *_family(
            "ingest_live_clients", "gauge", "Clients connected now (SSE and WebSocket).",
            [("", len(hub.clients))],
        ),
        *_family(
            "ingest_live_subscriptions", "gauge",
            "Distinct subscriptions (channel patterns and role) being served now.",
            [("", len(hub.feeds))],
        ),
        *_family(
            "ingest_live_messages_relayed_total", "counter",
            "Messages received from Redis and relayed.", [("", hub.seq)],
        ),
        *_family(
            "ingest_live_clients_dropped_total", "counter",
            "Clients dropped for being too slow to take their messages.", [("", hub.dropped)],
        ),
        *_family(
            "ingest_live_messages_dropped_total", "counter",
            "Messages dropped clients did not get (they may resume with Last-Event-ID).",
            [("", hub.dropped_messages)],
        ),
        *_family(
            "ingest_live_connections_refused_total", "counter",
            "Connections refused, by reason (token, role, origin, host, caps).",
            [(f'{{reason="{reason}"}}', count) for reason, count in refused],
        ),
        *_family(
            "ingest_live_buffered_messages", "gauge",
            "Messages kept for Last-Event-ID resumes.", [("", len(hub.buffer))],
        ),
        *_family(
            "ingest_live_redis_connected", "gauge",
            "1 while the relay is subscribed to Redis.", [("", int(hub.status == "connected"))],
        ),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"
