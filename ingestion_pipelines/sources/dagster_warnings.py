"""Dagster warnings the platform has decided about, silenced only where the code meets them.

Nothing here changes the process's warning filters at import: `quiet_backfill_policy_beta` is a
context manager (and decorator) scoped to building one asset.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import dagster as dg


@contextlib.contextmanager
def quiet_backfill_policy_beta() -> Iterator[None]:
    """`BackfillPolicy.single_run` is what lets a range backfill run as one run; Dagster marks
    the `backfill_policy` parameter beta. Its warning is silenced while the asset is built."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)
        yield
