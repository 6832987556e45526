"""`ingest live`: Server-Sent Events and WebSocket relays of the Redis channels `ticks:*`,
`bars:*` and `progress:*`, and a live page at `/` (see `app.py`). No Dagster import here."""
