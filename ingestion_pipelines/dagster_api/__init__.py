"""Talking to Dagster over its webserver's HTTP and GraphQL API, without importing Dagster.

- `http`: `DagsterHttp` (JSON/GraphQL over HTTP, Basic auth from the URL) and `DagsterHttpError`
- `client`: `DagsterClient`, running the operations of `graphql/*.graphql` (one per file)
- `feed_switches`: `FeedControl`, each feed's ON/OFF switch sensor
- `names`: the names both sides agree on (code location, tags, sensor suffix)

Used by `control/` (the `ingest` CLI) and `sidecar/`; the sidecar process never imports `dagster`.
"""
