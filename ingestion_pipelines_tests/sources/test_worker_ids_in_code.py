"""No declared worker id is written in the package's code outside its own folder: a declaration's
folder copied under a new name must be a working source (test_declared_copy.py), so nothing else
may name it. Code finds a worker from its declaration (the table it writes, the hook it names:
storage/declared.py `writers_by_table`, sources/declared_family.py `hooked_sources`). Checked as
quoted string literals in the Python files of `ingestion_pipelines/` and `docker/`; migrations
are history and keep the names they were written with; tests and docs may name workers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from ingestion_pipelines.storage.declared import DEFS_ROOT, declarations

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ingestion_pipelines"
SEARCHED = (PACKAGE, ROOT / "docker")
MIGRATIONS = PACKAGE / "storage" / "migrations"


def literals_naming(
    worker_ids: Iterable[str], files: Iterable[Path], defs_root: Path = DEFS_ROOT
) -> list[str]:
    """`path:line: literal` for each quoted worker id in `files` outside its folder under
    `defs_root`."""
    alternatives = "|".join(re.escape(w) for w in sorted(worker_ids, key=len, reverse=True))
    quoted = re.compile(rf"""(["'])({alternatives})\1""")
    found = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in quoted.finditer(line):
                if not path.is_relative_to(defs_root / match.group(2)):
                    found.append(f"{path}:{number}: {match.group(0)}")
    return found


def package_files() -> list[Path]:
    """The Python files searched (migrations excepted)."""
    return [
        path
        for root in SEARCHED
        for path in sorted(root.rglob("*.py"))
        if not path.is_relative_to(MIGRATIONS)
    ]


def test_no_declared_worker_id_is_a_literal_outside_its_folder():
    worker_ids = [d.worker_id for d in declarations()]
    files = package_files()
    assert len(worker_ids) >= 20 and len(files) > 200
    assert literals_naming(worker_ids, files) == []


def test_the_search_finds_a_worker_id_named_elsewhere(tmp_path):
    """The check can fail: a quoted worker id outside its folder is found, in either quotes and
    among longer names sharing its prefix; inside its own folder, or unquoted, it is not."""
    defs = tmp_path / "defs"
    (defs / "gold").mkdir(parents=True)
    own = defs / "gold" / "hook.py"
    own.write_text('WORKER = "gold"\n')
    elsewhere = tmp_path / "replay.py"
    elsewhere.write_text(
        "base_path('gold')\nSTANDARD = {\"gold_pnj\": 1}\n# gold, gold_pnj: prose\n"
    )
    found = literals_naming(["gold", "gold_pnj"], [own, elsewhere], defs)
    assert found == [f"{elsewhere}:1: 'gold'", f'{elsewhere}:2: "gold_pnj"']


def test_a_hook_family_finds_its_workers_by_the_hook_their_declarations_name():
    """`hooked_sources(Hook)`: the declarations whose `hook:` is that class, not a subclass's
    (the crypto hook extends the RSS hook; its worker is not an RSS hook worker)."""
    from ingestion_pipelines.sources.declared_family import hooked_sources
    from ingestion_pipelines.sources.news.crypto import CryptoNews
    from ingestion_pipelines.sources.news.rss import RssFeeds

    def naming(hook: type) -> set[str]:
        path = f"{hook.__module__}:{hook.__name__}"
        return {d.worker_id for d in declarations() if d.attributes.get("hook") == path}

    rss, crypto = hooked_sources(RssFeeds), hooked_sources(CryptoNews)
    assert set(rss) == naming(RssFeeds) and len(rss) >= 2
    assert set(crypto) == naming(CryptoNews) and not set(rss) & set(crypto)
    assert all(issubclass(source, RssFeeds) for source in rss.values())
