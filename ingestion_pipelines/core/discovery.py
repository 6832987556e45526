"""Import every module of a package, so that adding a worker is adding one file."""

from __future__ import annotations

import importlib
import pkgutil

# Modules of a family folder that are not part of the running code: its replay handler and its
# expected values for the standard tests (imported by the replay server and the tests only).
FAMILY_SKIP = ("replay", "testing")


def import_submodules(package_name: str, skip: tuple[str, ...] = ()) -> None:
    """Import every public module of a package and of its family sub-packages
    (``sources/fmarket/``: every module there but its ``replay`` and ``testing``)."""
    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_") and info.name not in skip:
            module = importlib.import_module(f"{package_name}.{info.name}")
            if info.ispkg:
                import_submodules(module.__name__, skip=FAMILY_SKIP)


def declared_subclasses(base: type) -> dict[str, type]:
    """Every subclass of `base` that declares its own `worker_id`, by worker id."""
    found: dict[str, type] = {}
    stack = list(base.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if "worker_id" in cls.__dict__:
            found[cls.worker_id] = cls
    return dict(sorted(found.items()))
