"""Everything the replay server serves, in one object tests can read and change.

    dataset = ReplayDataset(now=datetime(2026, 11, 23, 11, 0, tzinfo=timezone.utc))
    dataset.nav(23, date(2026, 11, 20))        # the NAV get-nav-history serves for that day
    dataset.funds[0]["nav"] = "n/a"            # a malformed row in the fund list
    dataset.nav_overrides[(23, date(2026, 11, 20))] = {"nav": None}  # a malformed NAV row
    dataset.recorded[worker_id].records = [...]  # a YAML source's served records
    dataset.set_feed("/rss/kinh-doanh.rss", "<rss ...>")
    dataset.fng_overrides[date(2026, 11, 22)] = None  # a missing index day

The dataset is shared by the server's threads; change it between requests, not during one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from ingestion_pipelines.core.timezones import ICT
from ingestion_pipelines.replay import routes
from ingestion_pipelines.replay.routes import read_data, read_variant

__all__ = ["ReplayDataset", "read_data", "read_variant"]


class ReplayDataset:
    """The recorded and generated data every HTTP source family serves, in one object.

    Each family registers its part (`routes.dataset_part`): a plain value is an attribute
    (`dataset.recorded`); an exposed part's attributes read and write through the dataset
    (`dataset.funds` is `dataset.fmarket.funds`)."""

    def __init__(self, *, now: datetime | None = None) -> None:
        object.__setattr__(self, "_exposed", [])
        self.fixed_now = now  # None: the real clock
        routes.load_replays()
        for name, (build, exposed) in routes.DATASET_PARTS.items():  # each family's state
            part = build(self)
            object.__setattr__(self, name, part)
            if exposed:
                self._exposed.append(part)

    def _owner(self, name: str) -> Any | None:
        return next(
            (p for p in self.__dict__.get("_exposed", ()) if _has(p, name)),
            None,
        )

    def __getattr__(self, name: str) -> Any:
        owner = self._owner(name)
        if owner is None:
            raise AttributeError(f"ReplayDataset has no {name!r}")
        return getattr(owner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        owner = self._owner(name)
        object.__setattr__(self, name, value) if owner is None else setattr(owner, name, value)

    # ------------------------------------------------------------------ clock

    def now(self) -> datetime:
        """The dataset's clock: the fixed time if set, else now (UTC)."""
        return self.fixed_now or datetime.now(UTC)

    def today_ict(self) -> date:
        """Today's date in Vietnam (ICT)."""
        return self.now().astimezone(ICT).date()


def _has(part: Any, name: str) -> bool:
    return name in vars(part) or hasattr(type(part), name)
