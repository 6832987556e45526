"""The one SQLAlchemy metadata every table joins, and the `extra` column every data table has."""

from __future__ import annotations

from sqlalchemy import Column, MetaData

from ingestion_pipelines.storage.types import JsonDocument


def extra_column() -> Column:
    """Every field the source sent for the record that has no typed column, verbatim (exact
    decimals as text), so no field is lost and a later column can be backfilled from it."""
    return Column("extra", JsonDocument)


# `Table.info` key naming the time column a table is partitioned by, one partition per UTC day,
# where the database supports it (MariaDB/MySQL; see `storage.partitions`).
PARTITION_DAY_COLUMN = "partition_day_column"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)
