"""The control-plane commands, one module per command family; each returns plain data (dicts,
lists; JSON-ready) and `control/cli.py` prints it.

- `status`: `ingest status`
- `switch`: `ingest start|stop`
- `launch`: `ingest trigger|backfill`
- `stats`: `ingest stats`
- `health`: `ingest health`
- `config`: `ingest config set|unset`
- `common`: tag names, `UsageError`, run and metadata shaping shared by the others

Errors: `UsageError` (a request that cannot make sense: exit 2), `ConfigError`/`KeyError`
(invalid value, unknown worker or key: exit 2), `ControlError` (Dagster unreachable or
refusing: exit 1).
"""
