"""What every part shares, importing no Dagster: process settings (`settings`, the `INGEST_*`
variables), the error root (`errors`), retries, redaction, exact values, time zones, the URL
policy, the Redis client and package discovery."""
