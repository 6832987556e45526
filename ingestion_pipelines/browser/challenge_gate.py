"""A stand-in for an anti-bot challenge in front of a replayed site, shaped like Cloudflare's
managed challenge: without a valid clearance cookie every page answers `403` with
`cf-mitigated: challenge` and a "Just a moment..." page whose script computes the cookie and
reloads. Only a JavaScript engine passes it:

- the cookie is computed by the page's script from a nonce issued for that visit (a new nonce on
  every challenge page, so the cookie differs on every visit) and the browser's
  `navigator.userAgent` (the clearance is bound to the User-Agent: sent with another one, it is
  refused);
- it expires `ttl_s` after the challenge was issued (then the challenge comes back);
- nonces the gate never issued are refused.

Used by the LyngSat replay (`sources/lyngsat/replay.py`), the tests and the benchmark.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

COOKIE = "ingest_clearance"
_MASK = 0xFFFFFFFF

_PAGE = """<!DOCTYPE html>
<html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<meta name="robots" content="noindex,nofollow"></head>
<body><div id="challenge-running">Checking if the site connection is secure</div>
<noscript><p>Enable JavaScript and cookies to continue</p></noscript>
<script>
(function () {{
  var nonce = "{nonce}";
  var text = nonce + "|" + navigator.userAgent;
  var h = 2166136261;
  for (var i = 0; i < text.length; i++) {{ h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0; }}
  for (var r = 0; r < {rounds}; r++) {{ h = Math.imul(h ^ (h >>> 13), 2654435761) >>> 0; }}
  setTimeout(function () {{
    document.cookie = "{cookie}=" + nonce + "." + h.toString(16) + "; path=/; max-age={ttl}; SameSite=Lax";
    location.replace(location.href);
  }}, {delay_ms});
}})();
</script></body></html>
"""


def clearance_value(nonce: str, user_agent: str, rounds: int) -> str:
    """What the challenge's script computes for `nonce` in a browser sending `user_agent`."""
    h = 2166136261
    for char in f"{nonce}|{user_agent}":
        h = ((h ^ ord(char)) * 16777619) & _MASK
    for _ in range(rounds):
        h = ((h ^ (h >> 13)) * 2654435761) & _MASK
    return f"{nonce}.{h:x}"


def cookie_from(header: str | None, name: str = COOKIE) -> str | None:
    """The value of cookie `name` in a Cookie header."""
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


@dataclass
class ChallengeGate:
    """The challenge: `answer(headers)` is None for a cleared request, else the challenge
    (status, headers, body). Counts what it served."""

    ttl_s: float = 300.0
    rounds: int = 20_000
    delay_ms: int = 50
    clock: Callable[[], float] = time.monotonic
    challenges: int = 0
    passed: int = 0
    refused: int = 0
    _issued: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cleared(self, headers: Mapping[str, str]) -> bool:
        """True when the request carries a valid, unexpired clearance for its User-Agent."""
        value = cookie_from(headers.get("cookie"))
        if value is None:
            return False
        nonce = value.partition(".")[0]
        with self._lock:
            issued = self._issued.get(nonce)
        ok = (
            issued is not None
            and self.clock() - issued < self.ttl_s
            and secrets.compare_digest(
                value, clearance_value(nonce, headers.get("user-agent") or "", self.rounds)
            )
        )
        with self._lock:
            if ok:
                self.passed += 1
            else:
                self.refused += 1
        return ok

    def challenge(self) -> tuple[int, dict[str, str], bytes]:
        """A challenge page with a nonce of its own."""
        nonce = secrets.token_hex(12)
        with self._lock:
            self._issued[nonce] = self.clock()
            self.challenges += 1
        body = _PAGE.format(
            nonce=nonce,
            rounds=self.rounds,
            cookie=COOKIE,
            ttl=int(self.ttl_s),
            delay_ms=self.delay_ms,
        ).encode()
        headers = {
            "Content-Type": "text/html; charset=UTF-8",
            "cf-mitigated": "challenge",
            "Cache-Control": "private, no-store, no-cache, max-age=0",
            "Server": "cloudflare",
        }
        return 403, headers, body

    def answer(self, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes] | None:
        """None when the request may pass, else the challenge to send."""
        return None if self.cleared(headers) else self.challenge()

    def expire_all(self) -> None:
        """Forget every issued nonce: every clearance is refused from now on."""
        with self._lock:
            self._issued.clear()
