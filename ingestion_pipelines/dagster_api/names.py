"""Names shared by the Dagster definitions, the control plane and the sidecar: one place each.

Plain constants (no Dagster import), so the sidecar and the CLI can use them too.
"""

# The code location and repository the workspace loads (pyproject `[tool.dagster]`).
LOCATION = "ingestion_pipelines"
REPOSITORY = "__repository__"

# Run tags written by the asset factory and the CLI, read by sensors, alerts and `ingest stats`.
WORKER_TAG = "ingest/worker"
CONFIG_KEY_TAG = "ingest/config_key"
REQUESTED_BY_TAG = "ingest/requested_by"
LAUNCHED_BY_TAG = "ingest/launched_by"
KIND_TAG = "ingest/kind"
# Set by the operator webserver from the authenticating proxy's header only.
IDENTITY_TAG = "ingest/identity"

# Dagster's own tags.
PARTITION_TAG = "dagster/partition"
WILL_RETRY_TAG = "dagster/will_retry"
RETRY_NUMBER_TAG = "dagster/retry_number"
MAX_RETRIES_TAG = "dagster/max_retries"

# A feed's ON/OFF switch is the sensor `<worker_id>_feed`.
FEED_SENSOR_SUFFIX = "_feed"


def feed_sensor_name(worker_id: str) -> str:
    """The name of the switch sensor of feed `worker_id`."""
    return f"{worker_id}{FEED_SENSOR_SUFFIX}"
