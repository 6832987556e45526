"""Sources that need code, as the same component (``hook:`` in their defs.yaml)::

    type: ingestion_pipelines.components.RestSource
    attributes:
      worker_id: cafef_news
      hook: ingestion_pipelines.sources.news.rss:RssFeeds   # module:Class
      settings: {...}
      table: {name: news_article}

The hook is a `DeclaredSource` subclass holding only the code the declaration cannot say (its
`build_requests`, its `parse`, a `record` model with its own validators): the declaration still
gives the worker id, settings, table, partitions, schedule, freshness and headers, and the
catalogue, the Dagster definitions and `ingest workers` treat it as any declared source. What
the hook class defines itself wins over what the declaration would make (its `record` over the
field map). Its standard tests' expected values are its family's ``testing.py`` (``STANDARD``)
unless the declaration has ``expect``; its replay is its family's ``replay.py`` unless it
declares ``replay``: both registered under every worker declared with the hook, never naming one
(sources/declared_family.py).

A hook whose worker is not one table of records fed to the crawl engine (`lyngsat`: three
tables from each page, a browser clearance, counts per satellite) **owns its asset**: it defines
``asset_defs(cron) -> sources.factory.SourceDefs`` (a classmethod), which the component builds
instead of the factory's; the declaration still gives its worker id, group, description,
settings, cron, freshness and table. Such a source is left out of `source_classes()` (the crawl
engine's sources: the standard tests, the deploy test's partitions), as it was as a Python worker.
"""

from __future__ import annotations

import importlib
from typing import Any

KEPT_FROM_DECLARATION = {"worker_id", "spec", "folder", "__doc__", "__module__"}


def load_hook(path: str, base: type) -> type:
    """The hook class at ``module:Class``; a ValueError says what is wrong."""
    module_name, _, class_name = path.partition(":")
    try:
        hook = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"hook {path!r}: {exc}") from None
    if not (isinstance(hook, type) and issubclass(hook, base)):
        raise ValueError(f"hook {path!r} is not a {base.__name__} subclass")
    if "worker_id" in vars(hook):
        raise ValueError(f"hook {path!r} sets its own worker_id: the declaration says it")
    return hook


def hooked(hook: type, base: type, attributes: dict[str, Any]) -> dict[str, Any]:
    """`attributes` less what the hook (or a class between it and `base`) defines itself, with
    the hook's module as the class's (its family, for its replay and expected values)."""
    own = {name for cls in hook.__mro__[: hook.__mro__.index(base)] for name in vars(cls)}
    kept = {k: v for k, v in attributes.items() if k not in own or k in KEPT_FROM_DECLARATION}
    return {**kept, "__module__": hook.__module__}


def owns_asset(source: type) -> bool:
    """Whether a declared source's hook builds its own asset (``asset_defs``)."""
    return callable(getattr(source, "asset_defs", None))
