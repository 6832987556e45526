"""The run config of a worker's run (the launchpad's `ops: {<worker>: {config: ...}}`).

Any key of the config chain may be given for one run. The secret keys (those marked `secret()`
in `workers.py`) are typed as references to an environment variable, `{env: NAME}`: Dagster
validates run config when a run is launched, before it stores anything, so a literal secret is
refused there and never reaches the instance database or a GraphQL answer.
"""

from __future__ import annotations

import dagster as dg


class SecretReference(dg.Config):
    """A secret named by the environment variable holding it (`{env: NAME}`), never the value:
    Dagster refuses a literal here when the run is launched, so it is never stored."""

    env: str


class RunOverrides(dg.PermissiveConfig):
    """Run config of a worker's run: any key of the chain for this run only. The secret keys
    (those marked `secret()` in `workers.py`) are typed as references, so a literal secret is
    refused at launch, before any run exists."""

    proxy: SecretReference | None = None
    database_url: SecretReference | None = None
    alert_webhook: SecretReference | None = None
    api_key: SecretReference | None = None
    etherscan_api_key: SecretReference | None = None
    cryptopanic_token: SecretReference | None = None
