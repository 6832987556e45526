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


def test_btc_chain_is_a_declaration_whose_hook_only_combines_the_four_answers():
    from ingestion_pipelines.sources.mempool.chain import ChainPoll

    chain = source_classes()["btc_chain"]
    assert issubclass(chain, ChainPoll) and chain.spec.hook.endswith(":ChainPoll")
    assert {"build_requests", "parse"} >= {k for k in vars(ChainPoll) if not k.startswith("_")}
    # settings, table, field map and freshness come from defs/btc_chain/defs.yaml
    assert chain.table.name == "btc_chain_stat" and chain.fresh_within.total_seconds() == 1800
    assert chain.Settings().provider == "mempool.space" and chain.group == "crypto"
    assert chain.record.model_fields["fee_fastest"].validation_alias == "fastestFee"
    for bad in ("", "has space", "x" * 65):  # the declared setting's pattern and lengths
        with pytest.raises(ValidationError, match="provider"):
            chain.Settings(provider=bad)


def test_lyngsat_is_a_declaration_whose_hook_owns_its_asset():
    from ingestion_pipelines.sources.declared_hooks import owns_asset
    from ingestion_pipelines.sources.lyngsat.source import SatellitePages

    lyngsat = declared.declared_sources()["lyngsat"]
    assert issubclass(lyngsat, SatellitePages) and owns_asset(lyngsat)
    assert "lyngsat" not in source_classes()  # not a source of the crawl engine
    assert workers.catalogue()["lyngsat"].settings is lyngsat.Settings
    settings = lyngsat.Settings()
    assert settings.cron == "30 3 * * 1" and settings.concurrency == 4
    assert settings.rate_limit_per_s == 1.0 and settings.satellites == []
    assert settings.regions == ["asia", "europe", "atlantic", "america"]
    # an inherited setting keeps its own bounds; the hook checks the FlareSolverr URL
    for bad in ({"concurrency": 65}, {"rate_limit_per_s": 0}, {"flaresolverr_url": "file:///x"}):
        with pytest.raises(ValidationError, match=next(iter(bad))):
            lyngsat.Settings(**bad)
    built = lyngsat.asset_defs("0 4 * * 1")
    spec = built.asset.specs_by_key[built.asset.key]
    assert spec.kinds == {"python", "sql", "chromium"} and not list(built.asset.check_specs)
    assert spec.metadata["tables"] == "satellite, satellite_transponder, satellite_channel"
    assert spec.group_name == "crawl" and built.asset.op.retry_policy.max_retries == 2
    assert built.schedule.cron_schedule == "0 4 * * 1" and built.job.name == "lyngsat_job"


def test_a_declared_list_of_texts_is_list_of_str_and_no_default_is_optional(tmp_path, isolated):
    hook = "ingestion_pipelines.sources.news.rss:RssFeeds"
    settings = {"tags": {"default": ["a"]}, "mirror": {"description": "none by default"}}
    made = make(tmp_path, hook, settings=settings).Settings
    assert made.model_fields["tags"].annotation == list[str]
    assert made(mirror=None).mirror is None and made(mirror="x").mirror == "x"
    with pytest.raises(ValidationError, match="tags"):
        made(tags=[{"not": "text"}])
