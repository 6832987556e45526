"""Transition alias: the GraphQL client now lives in `ingestion_pipelines.dagster_api.client`.

Kept only while modules being split in parallel still import this path; import
`ingestion_pipelines.dagster_api.client` in new code. Delete once nothing imports it.
"""

from ingestion_pipelines.dagster_api.client import (  # noqa: F401 - re-exported
    LOCATION,
    REPOSITORY,
    ControlError,
    DagsterClient,
    expect,
    operation,
    operation_names,
)
