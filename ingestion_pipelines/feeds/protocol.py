"""What a feed file gives the engine, and what `parse` hands back.

A feed (a `ingestion_pipelines.feeds.base.Feed` subclass) describes its protocol only:

- `source`: the `trade_tick.source` value (also the pub/sub channel part: `ticks:<source>:<symbol>`);
- `url(settings)` and `subscribe_messages(settings)`: where to connect and what to send after
  every (re)connect;
- `headers`: sent with the handshake (the engine adds a browser User-Agent when absent);
- `max_connection_age_s`: reconnect ahead of the server's own cut (Binance: 24 h);
- `parse(raw, received_at) -> Parsed`: rows per table, and whether the server asked us to go;
- optional `consecutive_ids = True` plus `history_request(settings, symbol, from_id, limit)` and
  `history_rows(symbol, payload, received_at)`: trade ids are consecutive per symbol, so the
  engine detects gaps and fills them from the REST history;
- optional `restore(engine, settings)`: read what the feed needs to resume from the database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ingestion_pipelines.core.errors import IngestError

BROWSER_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


class ParseError(IngestError, ValueError):
    """A frame the feed cannot read: it goes to `dead_letter` with this message as the reason
    and, when the record could be identified, its natural key (`record_key`)."""

    def __init__(self, message: str, *, record_key: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.record_key = record_key


@dataclass(slots=True)
class Parsed:
    """What one frame carried: rows by table name (in the order they should be written)."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    reconnect: str | None = None  # a reason: the server announced it is going away

    def add(self, table: str, row: dict[str, Any]) -> None:
        """Add one row for `table`."""
        self.rows.setdefault(table, []).append(row)


NOTHING = Parsed()


def trade_rows(
    trades: Any, row: Callable[[dict[str, Any]], dict[str, Any]], key: Callable[[dict], dict]
) -> list[dict[str, Any]]:
    """The `trade_tick` rows of a push's trade list, each made by `row`; the first unreadable
    trade fails the frame with a `ParseError` naming it by `key` (its source, symbol, trade id)."""
    if not isinstance(trades, list) or not trades:
        raise ParseError("a push without a data list")
    rows = []
    for trade in trades:
        if not isinstance(trade, dict):
            raise ParseError(f"a trade that is not an object: {str(trade)[:60]}")
        try:
            rows.append(row(trade))
        except (ValueError, ArithmeticError, TypeError) as exc:
            record_key = key(trade)
            raise ParseError(
                f"trade {record_key['symbol']} #{record_key['trade_id']}: {exc}",
                record_key=record_key,
            ) from None
    return rows
