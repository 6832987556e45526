"""Failure evidence in artifact storage: a local folder or any fsspec URL, with a retention."""

import os
import time
from pathlib import Path

import fsspec

from ingestion_pipelines.browser.artifacts import ArtifactStore

PNG = b"\x89PNG\r\n\x1a\nfake"


def test_evidence_is_stored_under_worker_and_run_and_old_files_are_pruned(tmp_path):
    store = ArtifactStore(str(tmp_path / "evidence"), retention_days=7)
    saved = store.save("lyngsat", "run-1", "Astra-3B", PNG, "<html>é</html>")
    assert (
        saved.screenshot_url.endswith("-Astra-3B.png") and "/lyngsat/run-1/" in saved.screenshot_url
    )
    assert Path(saved.screenshot_url).read_bytes() == PNG
    assert Path(saved.html_url).read_text(encoding="utf-8") == "<html>é</html>"
    old = store.save("lyngsat", "run-0", "Amos-3-7", PNG, b"<html>old</html>")
    eight_days_ago = time.time() - 8 * 86400
    for path in (old.screenshot_url, old.html_url):
        os.utime(path, (eight_days_ago, eight_days_ago))
    assert store.prune() == 2
    assert not os.path.exists(old.html_url) and os.path.exists(saved.html_url)


def test_any_fsspec_url_takes_the_evidence():
    store = ArtifactStore("memory://ingest-evidence/artifacts")
    saved = store.save("lyngsat", "run-2", "page", PNG, "<html></html>")
    assert saved.screenshot_url.startswith("memory://")
    with fsspec.open(saved.screenshot_url, "rb") as handle:
        assert handle.read() == PNG
    assert saved.as_dict() == {"screenshot": saved.screenshot_url, "html": saved.html_url}
