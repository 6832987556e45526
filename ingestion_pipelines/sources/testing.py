"""What a source family tells the standard tests about each of its workers.

Every family folder has a ``testing.py`` with ``STANDARD = {worker_id: Standard(...)}``; the
standard suite (``ingestion_pipelines_tests/sources/test_standard.py``) runs every worker of the
catalogue through its replay with it, and fails for a worker that has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

# A crawler (ingestion_pipelines_tests/sources/conftest.py) and the partition key it crawled.
Check = Callable[[Any, str | None], None]


@dataclass(frozen=True)
class Standard:
    """A worker's expected values and the ways to break its replay.

    ``check(crawler, partition)`` asserts the stored rows are exactly what the replay served;
    ``partition(dataset)`` picks a partition with data (None: unpartitioned); ``rerun`` says what
    a second run of the same partition does: ``unchanged`` (every record seen, none written),
    ``not_modified`` (a conditional GET answered 304) or ``snapshot`` (a new snapshot, all new
    rows); ``bad_record(dataset, partition)`` makes exactly one served record invalid;
    ``bad_payload_path`` is where an unparseable body must fail the run; ``seed(crawler)``, when
    set, fills what the worker reads before it runs (the table its `for_each` walks)."""

    check: Check
    bad_record: Callable[[Any, str | None], None]
    bad_payload_path: str
    partition: Callable[[Any], str] | None = None
    rerun: Literal["unchanged", "not_modified", "snapshot"] = "unchanged"
    seed: Callable[[Any], None] | None = None
