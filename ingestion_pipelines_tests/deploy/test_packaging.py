"""Packaging: everything the shipped code imports is a runtime dependency (the image installs
only those), and constraints.txt pins every dependency within pyproject.toml's ranges."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ingestion_pipelines"


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def runtime_requirements() -> list[Requirement]:
    return [Requirement(r) for r in project()["dependencies"]]


def pins() -> dict[str, Version]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            found[canonicalize_name(name)] = Version(version)
    return found


def runtime_closure() -> set[str]:
    """Every distribution a runtime install brings, by canonical name (extras included)."""
    seen: set[str] = set()
    todo = [(r.name, set(r.extras)) for r in runtime_requirements()]
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if key in seen:
            continue
        seen.add(key)
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            env_ok = req.marker is None or any(
                req.marker.evaluate({"extra": e}) for e in (extras or {""})
            )
            if env_ok:
                todo.append((req.name, set(req.extras)))
    return seen


def imported_top_level_modules() -> dict[str, Path]:
    """Top-level modules imported anywhere in the shipped package (absolute imports)."""
    modules: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                modules.setdefault(name.split(".")[0], path)
    return modules


def test_every_third_party_import_of_the_shipped_code_is_a_runtime_dependency():
    distributions = metadata.packages_distributions()
    closure = runtime_closure()
    missing = {}
    for module, path in imported_top_level_modules().items():
        if module in sys.stdlib_module_names or module in ("ingestion_pipelines", "__future__"):
            continue
        owners = {canonicalize_name(d) for d in distributions.get(module, [])}
        assert owners, f"{module} (imported by {path.relative_to(ROOT)}) is not installed"
        if not owners & closure:
            missing[module] = str(path.relative_to(ROOT))
    assert not missing, f"imported but not runtime dependencies: {missing}"


def test_the_runtime_closure_check_sees_a_dev_only_package():
    """The check above can fail: pytest is installed (dev) but is no runtime dependency."""
    assert "pytest" not in runtime_closure()
    assert "websockets" in runtime_closure()


def test_constraints_pin_every_dependency_within_its_range():
    pinned = pins()
    dev = [Requirement(r) for r in project()["optional-dependencies"]["dev"]]
    for req in [*runtime_requirements(), *dev]:
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not pinned in constraints.txt (make lock)"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pinned[name]}, outside {req.specifier}"
        )
    assert "setuptools" in pinned, "the image builds the project offline with a pinned setuptools"


def test_the_dockerfile_takes_its_base_as_a_build_argument_and_runs_as_a_user():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"(?m)^ARG BASE_IMAGE=\S+$", text)
    assert re.search(r"(?m)^FROM \$\{BASE_IMAGE\}$", text)
    users = re.findall(r"(?m)^USER (\S+)$", text)
    assert users and users[-1] not in ("root", "0")
    # Dependencies (constraints) are installed before the code is copied: separate layers.
    assert text.index("constraints.txt") < text.index("COPY ingestion_pipelines")


def test_every_recording_ships_as_package_data():
    # The image installs the package, not the checkout: a recording whose suffix no
    # package-data pattern names is missing there (btc_chain's `.txt` tip height once was).
    from fnmatch import fnmatch

    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    everywhere, declared = package_data["*"], package_data["ingestion_pipelines.defs"]
    recordings = [
        p for p in PACKAGE.rglob("data/*") if p.is_file() and "__pycache__" not in p.parts
    ]
    assert len(recordings) > 50  # the walk found the recordings
    missing = [
        str(p.relative_to(PACKAGE))
        for p in recordings
        if not any(fnmatch(p.name, pattern) for pattern in everywhere)
        and not (
            p.is_relative_to(PACKAGE / "defs")
            and any(fnmatch(str(p.relative_to(PACKAGE / "defs")), pat) for pat in declared)
        )
    ]
    assert missing == [], f"not shipped (add their suffix to package-data): {missing}"
