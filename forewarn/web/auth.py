"""Who may read the console: bearer tokens, each with a role.

Roles are ordered ``viewer < technician < ops``; a route names the least role it needs and
every higher role passes. Where tokens come from:

* ``FOREWARN_API_TOKEN`` (``Config.secrets.api_token``) is an ops token;
* ``FOREWARN_TOKENS="viewer:<token>,technician:<token>"`` adds more, parsed by
  :func:`tokens_from_environ` and handed to ``create_app(tokens=...)``;
  ``technician:<technician id>:<token>`` is a personal token that acts only as that
  technician (in the token table its role is written ``technician:<id>``);
  ``ops:<name>:<token>`` (or ``viewer:<name>:<token>``) names the person who holds it, so
  the audit trail says ``ops:alice`` instead of ``ops (console)``.

How a request proves it holds one:

* the JSON API and ``/metrics`` read ``Authorization: Bearer <token>``;
* console pages take the token once (the sign-in form posts it to ``/login``; a link
  may carry ``?token=``), open a server-side session (``forewarn.web.signin``) and set
  an HttpOnly cookie holding the session id, never the token; a bearer header works
  too, for curl.

Wrong tokens are counted per client: past ``web.login_failures_per_minute`` the client
gets 429 with ``Retry-After`` (``forewarn.web.throttle``).

With no token configured at all the console is open (the demo on 127.0.0.1) and every
page says so in a banner.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import Request

from forewarn.config.loading import ConfigError

COOKIE = "forewarn_session"
MIN_TOKEN_LENGTH = 16
_TECHNICIAN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class Role(enum.IntEnum):
    """What a token may do; a higher value includes everything below it."""

    viewer = 1
    technician = 2
    ops = 3


@dataclass(frozen=True)
class Principal:
    """The caller of one request."""

    role: Role
    authenticated: bool
    """False when no token is configured and the console is open to anyone."""
    technician: str | None = None
    """A personal technician token's technician: the caller acts only as them."""
    csrf: str | None = None
    """A signed-in browser's CSRF value (its session's); None for bearer or open access."""
    name: str | None = None
    """A named token's holder (``ops:alice:<token>``); None for a role-only token."""


class AuthProblem(Exception):
    """The request lacks a valid token (401) or its role is too low (403)."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        clear_cookie: bool = False,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.clear_cookie = clear_cookie
        self.retry_after = retry_after
        """For 429 (too many wrong tokens): seconds until the client may try again."""
        self.for_page = False
        """Set by the page dependency: the answer is an HTML page with a token form."""


class TokenAccepted(Exception):
    """A page got a valid ``?token=``: open a session, redirect to ``location``."""

    def __init__(self, location: str, token: str, principal: Principal) -> None:
        super().__init__("token accepted")
        self.location = location
        self.token = token
        self.principal = principal


class TokenRefused(Exception):
    """A page got a wrong ``?token=``: send the browser to the sign-in page, so the wrong
    token leaves the address bar (and its history) at once."""

    def __init__(self, location: str) -> None:
        super().__init__("token refused")
        self.location = location


def tokens_from_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """Parse ``FOREWARN_TOKENS`` (``role:token,role:token``) into token -> role.

    ``technician:<technician id>:<token>`` binds the token to one technician (its role is
    returned as ``technician:<id>``); a ``technician:`` entry whose rest holds no colon, or
    whose part after the first colon is shorter than a token, is the plain form.

    Raises :class:`ConfigError` naming the entry (never the token) when a role is unknown,
    a token is missing or too short.
    """
    raw = environ.get("FOREWARN_TOKENS", "")
    tokens: dict[str, str] = {}
    for position, entry in enumerate((e.strip() for e in raw.split(",")), start=1):
        if not entry:
            continue
        role, colon, token = entry.partition(":")
        role, token = role.strip(), token.strip()
        where = f"FOREWARN_TOKENS entry {position}"
        person, bound, personal = token.partition(":")
        if role in Role.__members__ and bound and len(personal.strip()) >= MIN_TOKEN_LENGTH:
            what = "a technician id" if role == "technician" else "a name"
            if not _TECHNICIAN_ID.match(person.strip()):
                raise ConfigError(f"{where}: {person.strip()!r} is not {what}")
            role, token = f"{role}:{person.strip()}", personal.strip()
            tokens[token] = role
            continue
        if not colon or not token:
            raise ConfigError(f"{where}: write it as role:token (roles: {_role_names()})")
        if role not in Role.__members__:
            raise ConfigError(f"{where}: unknown role {role!r} (roles: {_role_names()})")
        if len(token) < MIN_TOKEN_LENGTH:
            raise ConfigError(f"{where}: the token must be at least {MIN_TOKEN_LENGTH} characters")
        tokens[token] = role
    return tokens


def _role_names() -> str:
    return ", ".join(Role.__members__)


class TokenTable:
    """The configured tokens, kept only as SHA-256 digests.

    Lookups hash the presented token and compare it with every digest using
    :func:`hmac.compare_digest`, without stopping at the first match, so the time taken
    does not tell an attacker how close a guess was or which entry matched.
    """

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._entries: list[tuple[bytes, Role, str | None]] = []
        for position, (token, value) in enumerate(tokens.items(), start=1):
            role, _, holder = value.partition(":")
            if role not in Role.__members__:
                raise ValueError(f"token {position}: unknown role {value!r} ({_role_names()})")
            if len(token) < MIN_TOKEN_LENGTH:
                raise ValueError(
                    f"token {position} ({role}): must be at least {MIN_TOKEN_LENGTH} characters"
                )
            self._entries.append((token_digest(token), Role[role], holder or None))

    @property
    def configured(self) -> bool:
        """Whether any token exists; without one the console is open."""
        return bool(self._entries)

    def role_of(self, token: str) -> Role | None:
        """The role of ``token``, or None when it is not a configured token."""
        found = self.principal_of(token)
        return None if found is None else found.role

    def principal_of(self, token: str) -> Principal | None:
        """Who presents ``token`` (role and, for a personal token, the technician)."""
        return self.principal_of_digest(token_digest(token))

    def principal_of_digest(self, presented: bytes) -> Principal | None:
        """Who holds the token whose SHA-256 is ``presented`` (a session remembers it)."""
        found: Principal | None = None
        for digest, role, holder in self._entries:
            if hmac.compare_digest(presented, digest):
                technician = holder if role == Role.technician else None
                name = f"{role.name}:{holder}" if holder else None
                found = Principal(role, authenticated=True, technician=technician, name=name)
        return found


def token_digest(token: str) -> bytes:
    """The SHA-256 of ``token``: what the table and the sessions keep instead of it."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def actor(principal: Principal, via: str) -> str:
    """Who acted, as the audit trail records it: the token's name (``ops:alice``), a
    personal technician token's technician, or the role and where (``ops (api)``)."""
    if principal.name:
        return principal.name
    if principal.technician:
        return f"technician:{principal.technician}"
    if not principal.authenticated:
        return "ops (open console)"
    return f"{principal.role.name} ({via})"


def check_role(principal: Principal, least: Role) -> Principal:
    """``principal`` if its role is at least ``least``; else a 403 problem."""
    if principal.role < least:
        raise AuthProblem(
            403, f"this needs the {least.name} role; your token is {principal.role.name}"
        )
    return principal


def client_of(request: Request, *, trust_proxy: bool) -> str:
    """The address the request came from; behind a trusted proxy, the one it names.

    The proxy appends the address it saw to ``X-Forwarded-For``: the last entry is the
    only one it vouches for (earlier ones are whatever the client wrote).
    """
    if trust_proxy:
        forwarded = request.headers.get("x-forwarded-for", "").split(",")[-1].strip()
        if forwarded:
            return forwarded[:64]
    return request.client.host if request.client else "unknown"


def is_secure(request: Request, *, trust_proxy: bool) -> bool:
    """Whether the browser reached us over TLS (directly, or through a trusted proxy)."""
    if trust_proxy and request.headers.get("x-forwarded-proto", "").lower() == "https":
        return True
    return request.url.scheme == "https"
