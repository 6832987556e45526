"""What a websocket feed declares. The sidecar's engine does the rest (connect, subscribe,
heartbeat, reconnect, batch, spool, report)."""

from __future__ import annotations

from typing import ClassVar

from ingestion_pipelines.config.workers import FeedSettings, WorkerSpec, register
from ingestion_pipelines.core.discovery import declared_subclasses
from ingestion_pipelines.storage.table_policy import POLICIES, TablePolicy


class Feed:
    """A feed worker: its id, the tables it writes and their policies, its settings model, and
    its protocol.

    Subclasses are registered in the worker catalogue when their module is imported.
    The protocol methods (URL, subscribe messages, parse, heartbeat rules) are defined by the
    engine's contract in `ingestion_pipelines.sidecar`.
    """

    worker_id: ClassVar[str]
    description: ClassVar[str] = ""
    # how the sidecar treats each table the feed writes (`table_policy`); `tables` follows them
    policies: ClassVar[tuple[TablePolicy, ...]] = ()
    tables: ClassVar[tuple[str, ...]] = ()
    Settings: ClassVar[type[FeedSettings]] = FeedSettings

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "policies" in cls.__dict__:
            for policy in cls.policies:
                if POLICIES.get(policy.table) is not policy:
                    raise TypeError(
                        f"{cls.__name__}: the policy of {policy.table!r} is not the one "
                        "table_policy.POLICIES declares for that table"
                    )
            cls.tables = tuple(policy.table for policy in cls.policies)
        if "worker_id" in cls.__dict__:
            register(WorkerSpec(cls.worker_id, "feed", cls.Settings, cls.description))


def feed_classes() -> dict[str, type[Feed]]:
    """Every feed class, by worker id."""
    import ingestion_pipelines.feeds  # noqa: F401 - registers the feeds

    return declared_subclasses(Feed)
