"""Who may read the live relay: signed tokens, roles, and the Origin/Host allow-list.

Tokens are HS256 JWTs signed with INGEST_LIVE_JWT_SECRET, with the claims `sub` (who),
`exp` (until when) and `role`: `viewer` (ticks:* and bars:*) or `operator` (progress:* too).
A request carries one as `Authorization: Bearer <jwt>`, as the `token` query parameter (a
browser's EventSource cannot set headers) or as the `ingest_live_token` cookie (set by the page
when opened with `?token=`). When INGEST_LIVE_JWT_SECRET is set, nothing but `/healthz` is
served without a valid token; unset, the relay is open (the local demo): every client may read
every channel, and only the cap on clients in all applies (there are no users to count).

INGEST_LIVE_ORIGINS lists the origins (`https://live.example.com`, comma-separated) whose pages
may open `/stream` and `/ws`. On those two paths a request's `Host` must be one of theirs, an IP
address or `localhost` (a name only an allow-list vouches for: DNS rebinding), and its `Origin`,
when sent, one of them or the relay's own (the same as `Host`).

    ingest live token --sub alice --role viewer --ttl 3600     # mint one (needs the secret)
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.core.redaction import register_secret
from ingestion_pipelines.live.messages import KINDS

ALGORITHM = "HS256"
COOKIE = "ingest_live_token"
ROLES: dict[str, tuple[str, ...]] = {"viewer": ("ticks", "bars"), "operator": KINDS}
MIN_SECRET_BYTES = 32  # HS256: a key shorter than the hash is guessable offline
MAX_SUBJECT_CHARS = 200


class Refused(IngestError):
    """A request the relay does not serve: `status` (401 or 403) and why."""

    def __init__(self, status: int, reason: str, *, kind: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.kind = kind  # for the refusal counter: token, role, origin, host


@dataclass(frozen=True)
class Identity:
    """Who a request is for: `user` (the token's `sub`; None without tokens), its role and
    when its token expires (epoch seconds; None without tokens)."""

    user: str | None
    role: str
    expires_at: float | None = None

    @property
    def kinds(self) -> tuple[str, ...]:
        return ROLES[self.role]


def _origin(value: str) -> str | None:
    """`scheme://host[:port]` in lower case with the default port left out; None if not one."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def _netloc(origin: str) -> str:
    return origin.split("://", 1)[1]


def _host_only(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def mint_token(secret: str, sub: str, role: str, ttl_s: float, now: float | None = None) -> str:
    """A token for `sub` with `role`, valid `ttl_s` seconds."""
    import jwt

    if role not in ROLES:
        raise ValueError(f"role {role!r}: one of {', '.join(ROLES)}")
    if not sub or len(sub) > MAX_SUBJECT_CHARS:
        raise ValueError(f"sub: 1 to {MAX_SUBJECT_CHARS} characters")
    issued = int(now if now is not None else time.time())
    claims = {"sub": sub, "role": role, "iat": issued, "exp": issued + int(ttl_s)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


class LiveAuth:
    """Checks tokens and origins for one relay (`secret` None: no tokens asked)."""

    def __init__(self, secret: str | None, origins: list[str] | None = None):
        self.secret = secret or None
        if self.secret:
            register_secret(self.secret)  # never in a log line or an error
            if len(self.secret.encode()) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"INGEST_LIVE_JWT_SECRET has {len(self.secret.encode())} bytes: "
                    f"HS256 needs at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)"
                )
        self.origins: set[str] = set()
        for value in origins or []:
            origin = _origin(value)
            if origin is None:
                raise ValueError(f"INGEST_LIVE_ORIGINS: {value!r} is not an http(s) origin")
            self.origins.add(origin)
        self.hosts = {_netloc(o) for o in self.origins}

    @classmethod
    def from_settings(cls) -> LiveAuth:
        from ingestion_pipelines.core.settings import get_settings

        settings = get_settings()
        origins = [o for o in settings.live_origins.replace(",", " ").split() if o]
        return cls(settings.live_jwt_secret, origins)

    # ---- tokens -------------------------------------------------------------------------------
    def identify(
        self,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        cookies: Mapping[str, str],
        address: str | None,
    ) -> Identity:
        """The identity of a request; `Refused` (401/403) without a valid token when asked."""
        if not self.secret:  # an open relay: no users, only the cap on clients in all
            return Identity(None, "operator")
        token = _bearer(headers.get("authorization")) or query.get("token") or cookies.get(COOKIE)
        if not token:
            raise Refused(401, "a token is required (Authorization: Bearer, ?token= or cookie)",
                          kind="token")  # fmt: skip
        return self.verify(token)

    def verify(self, token: str) -> Identity:
        """The identity a token proves; `Refused` when it is forged, expired or malformed."""
        import jwt

        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],  # never the token's own choice (alg=none, RS/HS mix-ups)
                options={"require": ["sub", "exp", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise Refused(401, "the token expired", kind="token") from None
        except jwt.InvalidTokenError as exc:
            raise Refused(401, f"invalid token ({type(exc).__name__})", kind="token") from None
        sub, role = claims.get("sub"), claims.get("role")
        if not isinstance(sub, str) or not 0 < len(sub) <= MAX_SUBJECT_CHARS:
            raise Refused(401, "invalid token (sub)", kind="token")
        if role not in ROLES:
            raise Refused(403, f"role {str(role)[:40]!r} may read nothing here", kind="role")
        return Identity(sub, role, float(claims["exp"]))

    # ---- origins ------------------------------------------------------------------------------
    def check_origin(self, headers: Mapping[str, str]) -> None:
        """`Refused` (403) for a Host or Origin outside the allow-list (see the module)."""
        host = (headers.get("host") or "").strip().lower()
        for default in (":80", ":443"):
            host = host.removesuffix(default)
        if not self._host_allowed(host):
            raise Refused(
                403,
                f"Host {host[:100]!r} is not allowed: add its origin to INGEST_LIVE_ORIGINS",
                kind="host",
            )
        sent = headers.get("origin")
        if sent is None:
            return  # not a browser, or a same-origin EventSource (no Origin on a same-origin GET)
        origin = _origin(sent)
        if origin is not None and (origin in self.origins or _netloc(origin) == host):
            return
        raise Refused(403, f"Origin {sent[:100]!r} is not allowed", kind="origin")

    def _host_allowed(self, host: str) -> bool:
        if not host:
            return False
        if host in self.hosts:
            return True
        name = _host_only(host)
        if name == "localhost":
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
