"""Evidence of failure in artifact storage: a failed page's full-page screenshot and HTML, kept
under `<root>/<worker>/<run_id>/` for `retention_days`, where `root` is a local folder (default
`.local/artifacts`) or any fsspec URL (`s3://bucket/prefix` with s3fs, `gs://...` with gcsfs,
`memory://` in tests). The URLs returned are what the run's metadata and the dead letter link to.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fsspec
from loguru import logger

from ingestion_pipelines.core.redaction import redact_url

DEFAULT_ROOT = ".local/artifacts"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, limit: int = 80) -> str:
    """`text` as a file name: unsafe characters become `_`."""
    return _UNSAFE.sub("_", text).strip("_")[:limit] or "page"


@dataclass
class SavedEvidence:
    """Where a failure's evidence went (None: that part could not be taken)."""

    screenshot_url: str | None
    html_url: str | None

    def as_dict(self) -> dict[str, str]:
        """The links, for run metadata and dead-letter context."""
        return {
            k: v
            for k, v in (("screenshot", self.screenshot_url), ("html", self.html_url))
            if v is not None
        }


class ArtifactStore:
    """Writes evidence files and prunes those older than `retention_days`."""

    def __init__(self, root: str | None = None, retention_days: float = 14.0):
        self.root = (root or DEFAULT_ROOT).rstrip("/")
        self.retention_days = retention_days
        if "://" not in self.root:
            self.root = str(Path(self.root).resolve())
        self.fs, self.base = fsspec.core.url_to_fs(self.root)

    def url_of(self, path: str) -> str:
        """The URL of a stored path (a plain path for local storage)."""
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return path if protocol in ("file", "local") else f"{protocol}://{path.lstrip('/')}"

    def _write(self, path: str, data: bytes) -> str:
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        with self.fs.open(path, "wb") as handle:
            handle.write(data)
        return self.url_of(path)

    def save(
        self,
        worker_id: str,
        run_id: str | None,
        name: str,
        screenshot: bytes | None,
        html: str | bytes | None,
    ) -> SavedEvidence:
        """Store one failure's screenshot (`.png`) and HTML (`.html`, as served or rendered)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        folder = f"{self.base}/{safe_name(worker_id)}/{safe_name(run_id or 'no-run')}"
        stem = f"{folder}/{stamp}-{safe_name(name)}"
        shot = html_url = None
        try:
            if screenshot:
                shot = self._write(f"{stem}.png", screenshot)
            if html is not None:
                data = html.encode("utf-8") if isinstance(html, str) else html
                html_url = self._write(f"{stem}.html", data)
        except Exception as exc:  # noqa: BLE001 - evidence never fails the run
            logger.bind(worker_id=worker_id).warning(
                "evidence of {} not stored at {}: {}", name, redact_url(self.root), exc
            )
        return SavedEvidence(shot, html_url)

    def prune(self, now: float | None = None) -> int:
        """Delete the evidence files older than the retention period; how many."""
        cutoff = (now or time.time()) - timedelta(days=self.retention_days).total_seconds()
        removed = 0
        try:
            paths = self.fs.find(self.base)
        except FileNotFoundError:
            return 0
        for path in paths:
            try:
                modified = self.fs.modified(path)
            except (NotImplementedError, FileNotFoundError):
                continue
            stamp = (
                modified.timestamp()
                if modified.tzinfo
                else modified.replace(tzinfo=UTC).timestamp()
            )
            if stamp < cutoff:
                self.fs.rm(path)
                removed += 1
        return removed
