"""The route-registration API of the HTTP replay server.

A source declared in YAML is served from its recorded payload (``sources/declared_replay.py``, from its
defs.yaml's ``replay``). A Python source family's ``replay.py`` (``sources/<family>/replay.py``)
registers what it serves when the server loads it, so adding a source touches its folder only (a
hook family serves the workers declared with its hook, sources/declared_family.py):

    from ingestion_pipelines.replay.routes import Response, base_path, route

    base_path(worker_id, "/api/v3")          # where INGEST_<WORKER>__BASE_URL points

    @route("/api/v3/coins/markets", "GET")
    def coins_markets(request, dataset):
        return Response.json(...)

:func:`load_replays` imports every family's ``replay`` module (sources and feeds alike).
"""

from __future__ import annotations

import importlib
import json
import math
import pkgutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Any

import orjson

from ingestion_pipelines.storage.declared import DEFS_ROOT

if TYPE_CHECKING:
    from ingestion_pipelines.replay.dataset import ReplayDataset

JSON = "application/json; charset=utf-8"
FAMILY_PACKAGES = ("ingestion_pipelines.sources", "ingestion_pipelines.feeds")


@dataclass
class ReplayRequest:
    """One request as the server received it."""

    method: str
    path: str  # without the query string
    query: dict[str, str]  # last value wins for a repeated name
    headers: dict[str, str]  # names lower-cased
    body: bytes
    time: float  # time.time() when it arrived
    raw_query: str = ""

    def json(self) -> Any:
        """The body decoded as JSON (``None`` when empty)."""
        return json.loads(self.body or b"null")


@dataclass
class Response:
    """One answer: status, body and headers."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, **headers: str) -> Response:
        """A JSON answer."""
        return cls(status, orjson.dumps(payload), {"Content-Type": JSON, **headers})


Handler = Callable[[ReplayRequest, "ReplayDataset"], Response]
Fallback = Callable[[ReplayRequest, "ReplayDataset"], Response | None]
Builder = Callable[["ReplayDataset"], Any]

# path -> method -> handler; filled by the families' replay modules
ROUTES: dict[str, dict[str, Handler]] = {}
# GET handlers tried, in order, for a path no route serves (e.g. RSS documents by path)
FALLBACKS: list[Fallback] = []
# worker id -> the part of the URL after the server's root (contract: documented paths append)
WORKER_BASE_PATHS: dict[str, str] = {}
# an exception a handler raises -> the answer the real service gives for it
ERROR_ANSWERS: dict[type[Exception], Callable[[Exception], Response]] = {}
# path prefix -> the body of a 429 there (what the real service says when over its rate limit)
THROTTLE_BODIES: dict[str, Any] = {}
# attribute of ReplayDataset -> (what builds it from the dataset, whether its attributes are
# exposed on the dataset): a family's own served state
DATASET_PARTS: dict[str, tuple[Callable[[ReplayDataset], Any], bool]] = {}
# budget name -> the path prefix it covers (a server answering 429 past a per-minute budget)
RATE_LIMITED: dict[str, str] = {}


def route(path: str, *methods: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``methods`` at ``path``."""

    def register(handler: Handler) -> Handler:
        for method in methods or ("GET",):
            ROUTES.setdefault(path, {})[method] = handler
        return handler

    return register


def fallback(handler: Fallback) -> Fallback:
    """Register a GET handler for paths no route serves; it returns None when not its path."""
    FALLBACKS.append(handler)
    return handler


def base_path(worker_id: str, suffix: str = "") -> None:
    """Say that ``worker_id`` is served here, its base URL being the server's root + ``suffix``."""
    WORKER_BASE_PATHS[worker_id] = suffix


# INGEST_<WORKER>__<SETTING> -> path: another base URL setting of a worker served here (a second
# provider's `<provider>_base_url`, sources/declared_providers_replay.py)
SETTING_PATHS: dict[str, str] = {}


# INGEST_<WORKER>__<SETTING> -> a value the replay needs the worker to use (`replay.settings` of a
# declaration: a subset the recordings hold, e.g. the one fund whose detail was captured)
SETTING_VALUES: dict[str, str] = {}


def setting_value(worker_id: str, setting: str, value: str) -> None:
    """Say that against this replay ``worker_id``'s setting ``setting`` must be ``value``."""
    SETTING_VALUES[f"INGEST_{worker_id.upper()}__{setting.upper()}"] = value


def setting_path(worker_id: str, setting: str, suffix: str) -> None:
    """Say that ``worker_id``'s URL setting ``setting`` is the server's root + ``suffix``."""
    SETTING_PATHS[f"INGEST_{worker_id.upper()}__{setting.upper()}"] = suffix


def dataset_part(name: str, *, expose: bool = False) -> Callable[[Builder], Builder]:
    """Register the decorated function as the builder of ``ReplayDataset.<name>``, the state a
    family's routes serve (tests read and change it there). It gets the dataset (for its clock);
    with ``expose``, the part's attributes also read and write as the dataset's own."""

    def register(build: Builder) -> Builder:
        DATASET_PARTS[name] = (build, expose)
        return build

    return register


def error_answer(
    exc_type: type[Exception],
) -> Callable[[Callable[[Exception], Response]], Callable[[Exception], Response]]:
    """Register the decorated function as the answer to ``exc_type`` raised by a handler."""

    def register(answer: Callable[[Exception], Response]) -> Callable[[Exception], Response]:
        ERROR_ANSWERS[exc_type] = answer
        return answer

    return register


def throttle_body(prefix: str, body: Any) -> None:
    """Say what a 429 under ``prefix`` carries (a fault without a body, or the rate limit)."""
    THROTTLE_BODIES[prefix] = body


def rate_limited(name: str, prefix: str) -> None:
    """Offer a per-minute budget called ``name`` over the paths under ``prefix``
    (``ReplayServer(rate_limits={name: per_minute})``, ``--<name>-rate-limit``)."""
    RATE_LIMITED[name] = prefix


def throttle_body_for(path: str) -> Any | None:
    """The registered 429 body for ``path``, if any."""
    return next((b for p, b in THROTTLE_BODIES.items() if path.startswith(p)), None)


class RateLimit:
    """A sliding one-minute window of at most ``per_minute`` calls."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def check(self) -> int | None:
        """Count one call; return the Retry-After seconds when it is over budget."""
        now = time.monotonic()
        with self._lock:
            while self._calls and now - self._calls[0] >= 60:
                self._calls.popleft()
            if len(self._calls) >= self.per_minute:
                return max(1, math.ceil(60 - (now - self._calls[0])))
            self._calls.append(now)
            return None


# ---------------------------------------------------------------- the families


def family_packages() -> list[str]:
    """Every source and feed family package (``sources/<family>/``, ``feeds/<family>/``)."""
    found = []
    for parent in FAMILY_PACKAGES:
        package = importlib.import_module(parent)
        found += [
            f"{parent}.{info.name}"
            for info in pkgutil.iter_modules(package.__path__)
            if info.ispkg and not info.name.startswith("_")
        ]
    return found


RECORDED_REPLAYS = (
    "ingestion_pipelines.sources.declared_replay"  # the YAML sources' recorded payloads
)


def load_replays() -> list[str]:
    """Import the ``replay`` module of every family (they register their routes) and the
    recorded replays of the sources declared in YAML; the modules' names."""
    loaded = [importlib.import_module(RECORDED_REPLAYS).__name__]
    for package in family_packages():
        if resources.files(package).joinpath("replay.py").is_file():
            loaded.append(importlib.import_module(f"{package}.replay").__name__)
    return loaded


def data_file(name: str) -> Traversable:
    """The recorded file ``name`` from the ``data/`` folder of the family (or of the YAML
    source's folder, ``defs/<worker_id>/data/``) that holds it."""
    for package in family_packages():
        candidate = resources.files(package).joinpath("data", name)
        if candidate.is_file():
            return candidate
    for candidate in DEFS_ROOT.glob(f"*/data/{name}"):
        return candidate
    raise FileNotFoundError(f"no family's or defs folder's data/ holds {name!r}")


def read_data(name: str) -> bytes:
    """A recorded file (see each family's ``data/PROVENANCE.md``)."""
    return data_file(name).read_bytes()


def read_variant(name: str) -> Any:
    """A bundled JSON recording of a payload variant."""
    return json.loads(read_data(name))
