"""Who may read the console: bearer tokens, each with a role.

Roles are ordered ``viewer < technician < ops``; a route names the least role it needs and
every higher role passes. Where tokens come from:

* ``FOREWARN_API_TOKEN`` (``Config.secrets.api_token``) is an ops token;
* ``FOREWARN_TOKENS="viewer:<token>,technician:<token>"`` adds more, parsed by
  :func:`tokens_from_environ` and handed to ``create_app(tokens=...)``;
  ``technician:<technician id>:<token>`` is a personal token that acts only as that
  technician (in the token table its role is written ``technician:<id>``).

How a request proves it holds one:

* the JSON API and ``/metrics`` read ``Authorization: Bearer <token>``;
* console pages accept ``?token=<token>`` once, answer with a redirect to the same page
  without it and an HttpOnly cookie, and read the cookie from then on (a bearer header
  works too, for curl).

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
from urllib.parse import urlencode

from fastapi import Request

from forewarn.config.loading import ConfigError

COOKIE = "forewarn_token"
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


class AuthProblem(Exception):
    """The request lacks a valid token (401) or its role is too low (403)."""

    def __init__(self, status_code: int, message: str, *, clear_cookie: bool = False) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.clear_cookie = clear_cookie
        self.for_page = False
        """Set by the page dependency: the answer is an HTML page with a token form."""


class TokenAccepted(Exception):
    """A page got a valid ``?token=``: redirect to ``location`` and set the cookie."""

    def __init__(self, location: str, token: str) -> None:
        super().__init__("token accepted")
        self.location = location
        self.token = token


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
        if role == "technician" and bound and len(personal.strip()) >= MIN_TOKEN_LENGTH:
            if not _TECHNICIAN_ID.match(person.strip()):
                raise ConfigError(f"{where}: {person.strip()!r} is not a technician id")
            role, token = f"technician:{person.strip()}", personal.strip()
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
            role, _, technician = value.partition(":")
            if role not in Role.__members__ or (technician and role != "technician"):
                raise ValueError(f"token {position}: unknown role {value!r} ({_role_names()})")
            if len(token) < MIN_TOKEN_LENGTH:
                raise ValueError(
                    f"token {position} ({role}): must be at least {MIN_TOKEN_LENGTH} characters"
                )
            self._entries.append((_digest(token), Role[role], technician or None))

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
        presented = _digest(token)
        found: Principal | None = None
        for digest, role, technician in self._entries:
            if hmac.compare_digest(presented, digest):
                found = Principal(role, authenticated=True, technician=technician)
        return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def _check(principal: Principal, least: Role) -> Principal:
    if principal.role < least:
        raise AuthProblem(
            403, f"this needs the {least.name} role; your token is {principal.role.name}"
        )
    return principal


def authenticate_api(table: TokenTable, least: Role, request: Request) -> Principal:
    """The caller of a machine route: a bearer token with at least ``least``."""
    if not table.configured:
        return Principal(Role.ops, authenticated=False)
    token = _bearer(request)
    if token is None:
        raise AuthProblem(401, "send 'Authorization: Bearer <token>'")
    principal = table.principal_of(token)
    if principal is None:
        raise AuthProblem(401, "the bearer token is not valid")
    return _check(principal, least)


def authenticate_page(table: TokenTable, least: Role, request: Request) -> Principal:
    """The caller of a console page: ``?token=`` once, then the cookie (or a bearer).

    A valid ``?token=`` raises :class:`TokenAccepted`; a missing or wrong token raises an
    :class:`AuthProblem` marked ``for_page``, answered with a page that asks for one.
    """
    try:
        return _page_principal(table, least, request)
    except AuthProblem as problem:
        problem.for_page = True
        raise


def _page_principal(table: TokenTable, least: Role, request: Request) -> Principal:
    if not table.configured:
        return Principal(Role.ops, authenticated=False)
    offered = request.query_params.get("token")
    if offered is not None:
        if table.role_of(offered) is None:
            raise AuthProblem(401, "that token is not valid")
        # Move the token out of the address bar (and browser history) into the cookie.
        remaining = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        # One leading slash: "//host" would send the browser to another site.
        path = "/" + request.url.path.lstrip("/")
        location = path + (f"?{urlencode(remaining)}" if remaining else "")
        raise TokenAccepted(location, offered)
    cookie = request.cookies.get(COOKIE)
    bearer = _bearer(request)
    for token in (bearer, cookie):
        if token is None:
            continue
        principal = table.principal_of(token)
        if principal is not None:
            return _check(principal, least)
    if cookie is not None:
        raise AuthProblem(401, "your saved token is no longer valid", clear_cookie=True)
    raise AuthProblem(401, "enter an access token to open the console")
