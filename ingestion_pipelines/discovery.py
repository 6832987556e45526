"""Import every module of a package, so that adding a worker is adding one file."""

from __future__ import annotations

import importlib
import pkgutil


def import_submodules(package_name: str, skip: tuple[str, ...] = ()) -> None:
    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_") and info.name not in skip:
            importlib.import_module(f"{package_name}.{info.name}")


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
