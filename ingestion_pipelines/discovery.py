"""Import every module of a package, so that adding a worker is adding one file."""

from __future__ import annotations

import importlib
import pkgutil


def import_submodules(package_name: str, skip: tuple[str, ...] = ()) -> None:
    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_") and info.name not in skip:
            importlib.import_module(f"{package_name}.{info.name}")
