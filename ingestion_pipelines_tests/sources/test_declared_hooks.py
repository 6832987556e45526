"""`hook:` in a defs.yaml: a source that needs code is the same component, its code a
`DeclaredSource` subclass (`cafef_news`: the RSS hook, its settings and table declared)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ingestion_pipelines.config import workers
from ingestion_pipelines.sources import declared
from ingestion_pipelines.sources.base import source_classes
from ingestion_pipelines.sources.declared import DeclaredSource, source_class
from ingestion_pipelines.sources.declared_spec import RestSourceSpec
from ingestion_pipelines.sources.news.rss import Article, RssFeeds
from ingestion_pipelines.storage.declared import Declaration


def test_the_hooked_source_is_a_declared_source_with_the_hooks_code():
    cafef = source_classes()["cafef_news"]
    assert issubclass(cafef, RssFeeds) and issubclass(cafef, DeclaredSource)
    assert cafef.record is Article  # the hook's own model, not one made from a field map
    assert cafef.Settings().feeds == ["/thi-truong-chung-khoan.rss"]  # declared settings
    assert cafef.Settings().cron == "5 * * * *" and cafef.group == "news"
    assert cafef.table.name == "news_article" and cafef.__module__ == RssFeeds.__module__
    assert workers.catalogue()["cafef_news"].settings is cafef.Settings


@pytest.fixture
def isolated(monkeypatch):
    """Declarations made here stay out of the catalogue."""
    monkeypatch.setattr(declared, "_MADE", dict(declared._MADE))
    monkeypatch.setattr(workers, "_registry", dict(workers.catalogue()))


def make(tmp_path: Path, hook: str | None, **more):
    attributes = {"worker_id": "hook_example", "table": {"name": "news_article"}, **more}
    if hook:
        attributes["hook"] = hook
    return source_class(Declaration(tmp_path, attributes))


@pytest.mark.parametrize(
    ("hook", "says"),
    [
        ("ingestion_pipelines.sources.news.missing:Feeds", "No module named"),
        ("ingestion_pipelines.sources.news.rss:Nothing", "has no attribute 'Nothing'"),
        ("ingestion_pipelines.sources.base:Source", "is not a DeclaredSource subclass"),
    ],
)
def test_a_hook_that_is_no_declared_source_class_is_refused_by_name(tmp_path, isolated, hook, says):
    with pytest.raises(ValueError, match=says) as raised:
        make(tmp_path, hook)
    assert hook in str(raised.value)


def test_without_a_hook_the_declaration_needs_a_request(tmp_path, isolated):
    with pytest.raises(ValidationError, match="`request` is required"):
        RestSourceSpec.model_validate({"worker_id": "hook_example", "table": {"name": "x"}})
    made = make(tmp_path, "ingestion_pipelines.sources.news.rss:RssFeeds")
    assert made.worker_id == "hook_example" and made.record is Article
