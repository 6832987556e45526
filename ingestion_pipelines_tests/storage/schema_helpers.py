"""A copy of the schema declaration to change, and a copy of the migrations folder to write
revisions into (tests never write into the package)."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import MetaData

from ingestion_pipelines.storage.migrate import MIGRATIONS_DIR
from ingestion_pipelines.storage.tables import full_metadata


def metadata_copy() -> MetaData:
    """A deep copy of the full schema declaration (same naming convention, same table options)."""
    source = full_metadata()
    copy = MetaData(naming_convention=dict(source.naming_convention))
    for table in source.sorted_tables:
        table.to_metadata(copy)
    return copy


def migrations_copy(tmp_path: Path) -> Path:
    """The package's migrations folder copied under `tmp_path` (revisions, template)."""
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target
