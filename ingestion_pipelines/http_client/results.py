"""What a request gives back (`HttpResult`) and what a session counted (`HttpStats`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True)
class HttpResult:
    """One completed response (the last attempt's)."""

    status: int
    headers: Mapping[str, str]  # case-insensitive (curl_cffi ``Headers``)
    content: bytes
    url: str  # the final URL after redirects, as sent (not redacted)
    elapsed_s: float
    not_modified: bool = False
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400

    @property
    def encoding(self) -> str:
        content_type = self.headers.get("content-type") or ""
        match = re.search(r"charset=[\"']?([\w.:-]+)", content_type, re.I)
        return match.group(1) if match else "utf-8"

    @property
    def text(self) -> str:
        try:
            return self.content.decode(self.encoding, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return orjson.loads(self.content)


LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, float("inf"))


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


@dataclass
class HttpStats:
    """Counters of one ``CrawlSession``; ``as_metadata()`` gives JSON-ready values."""

    requests: int = 0  # attempts sent (retries included)
    retries: int = 0
    bytes: int = 0  # body bytes received (decoded), all attempts
    not_modified: int = 0
    requests_by_status: dict[str, int] = field(default_factory=dict)  # "200", "503", "error"
    rate_limit_wait_s: float = 0.0
    backoff_wait_s: float = 0.0
    # request latency (each attempt, send to last byte): counts per bucket, cumulative as in
    # Prometheus histograms, keyed by the bucket's upper bound in seconds ("+Inf" last)
    latency_le: dict[str, int] = field(default_factory=dict)
    latency_sum_s: float = 0.0

    def observe_latency(self, seconds: float) -> None:
        """Count one attempt's latency in the cumulative buckets `LATENCY_BUCKETS_S`."""
        if not self.latency_le:
            self.latency_le = {_bound(b): 0 for b in LATENCY_BUCKETS_S}
        for bound in LATENCY_BUCKETS_S:
            if seconds <= bound:
                self.latency_le[_bound(bound)] += 1
        self.latency_sum_s += seconds

    def as_metadata(self) -> dict[str, Any]:
        return {
            "http_requests": self.requests,
            "http_retries": self.retries,
            "http_bytes": self.bytes,
            "http_not_modified": self.not_modified,
            "http_requests_by_status": dict(sorted(self.requests_by_status.items())),
            "http_rate_limit_wait_s": round(self.rate_limit_wait_s, 3),
            "http_backoff_wait_s": round(self.backoff_wait_s, 3),
            "http_latency_le": dict(self.latency_le),
            "http_latency_sum_s": round(self.latency_sum_s, 6),
        }
