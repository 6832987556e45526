"""Removing secrets from text before it reaches a log, the Dagster UI, metadata or an exception."""

from __future__ import annotations

import re
import threading
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

_known_secrets: set[str] = set()
_known_lock = threading.Lock()
_known_pattern: re.Pattern[str] | None = None

# scheme://user:password@host  -> scheme://user:***@host ; scheme://token@host -> scheme://***@host
_URL_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/\s@:]*(?::[^/\s@]*)?)@"
)
# key=value / key: value pairs whose key names a secret
_SECRET_PAIRS = re.compile(
    r"(?i)(?P<key>\b(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|"
    r"auth|authorization|x-api-key|x-cg-pro-api-key|private[_-]?key|client[_-]?secret)"
    r"[\"']?\s*[=:]\s*[\"']?)(?:(?:bearer|basic|token)\s+)?(?P<value>[^\s&\"',;}]+)"
)
# Every key matched by _SECRET_PAIRS contains one of these: a cheap test before the regex.
_PAIR_WORDS = ("pass", "pwd", "secret", "token", "key", "auth")


def register_secret(value: str | None) -> None:
    """Remember a secret value so that any later text containing it literally is masked."""
    global _known_pattern
    if not value or len(value) < 4:
        return
    with _known_lock:
        if value in _known_secrets:
            return
        _known_secrets.add(value)
        ordered = sorted(_known_secrets, key=len, reverse=True)
        _known_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    if ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        return f"{match.group('scheme')}{user}:{MASK}@"
    return f"{match.group('scheme')}{MASK}@"


def redact(text: str) -> str:
    """Mask credentials in URLs, `key=value` secrets and every registered secret value."""
    if not text:
        return text
    pattern = _known_pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if "@" in text:
        text = _URL_USERINFO.sub(_mask_userinfo, text)
    lowered = text.lower()
    if any(word in lowered for word in _PAIR_WORDS):
        text = _SECRET_PAIRS.sub(lambda m: f"{m.group('key')}{MASK}", text)
    return text


def redact_url(url: str) -> str:
    """A URL safe to show: password (or bare token userinfo) and secret query values masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = parts.netloc
    if "@" not in netloc:
        return redact(url)
    userinfo, host = netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
    netloc = f"{user}:{MASK}@{host}" if user else f"{MASK}@{host}"
    return redact(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))
