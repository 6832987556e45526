"""The Dagster-free sidecar (`ingest sidecar`): websocket feeds, their writer, spool, gap filler,
leases and health probes; it reports to Dagster over HTTP and imports no `dagster` module."""
