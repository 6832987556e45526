"""A hook family's replay and expected values, registered under the workers declared with its
hook (sources/declared_hooks.py), never naming one.

The declaration says the worker id (``defs/<worker_id>/defs.yaml``, ``hook: module:Class``); the
family's ``replay.py`` serves every worker declared with its hook and its ``testing.py`` gives
each of them its expected values::

    serve_hooked(ChainPoll, "/mempool/api")     # routes.base_path(<each such worker>, ...)
    STANDARD = {w: standard(source) for w, source in hooked_sources(ChainPoll).items()}

So a declaration's folder copied under a new name (its worker id and table renamed inside) is
served and tested like the original, and no worker id is written outside its folder.
"""

from __future__ import annotations

from ingestion_pipelines.replay.routes import base_path
from ingestion_pipelines.sources.declared import DeclaredSource, load_declared_sources


def hooked_sources(hook: type) -> dict[str, type[DeclaredSource]]:
    """The declared sources whose ``hook:`` is ``hook`` itself (not a subclass of it), by
    worker id."""
    return {w: cls for w, cls in load_declared_sources().items() if cls.__bases__ == (hook,)}


def serve_hooked(hook: type, suffix: str = "") -> list[str]:
    """Say that every worker declared with ``hook`` is served by its family's replay at the
    server's root + ``suffix`` (``routes.base_path``); their worker ids."""
    served = list(hooked_sources(hook))
    for worker_id in served:
        base_path(worker_id, suffix)
    return served
