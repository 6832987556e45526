"""Transition alias: the feed switches now live in `ingestion_pipelines.dagster_api.feed_switches`.

Kept only while modules being split in parallel still import this path (the import contracts
then name the importer to update); delete once nothing imports it.
"""

from ingestion_pipelines.dagster_api.feed_switches import (  # noqa: F401 - re-exported
    FeedControl,
    FeedControlError,
)
