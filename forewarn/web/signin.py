"""Signing in to the console: server-side sessions, the sign-in page, CSRF, throttling.

How a browser signs in: the token form posts to ``/login`` (or a link carries
``?token=``, which is traded at once); a valid token opens a row in ``sessions`` and the
browser gets an HttpOnly, SameSite=Lax cookie with a random session id (Secure when it
came over TLS, directly or through a trusted proxy). Each request looks the session up:
signed out (``/logout`` revokes the row), expired (``web.session_lifetime``) or opened
by a token that is no longer configured, it is refused. A wrong token is counted
against the client (:class:`~forewarn.web.throttle.FailureLimiter`): too many in a
minute and it gets 429 with ``Retry-After``.

CSRF: console forms carry a hidden ``csrf`` field equal to the session's ``csrf``
column. Another site can make a browser send the cookie but cannot read a console page
to learn the field, so a forged POST is refused (403). The value lives in the database,
so any web process accepts a form another one served. Without a session (the open
console, or a bearer header) the field is an HMAC under a per-process secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import delete, or_

from forewarn.store.console import ConsoleSession
from forewarn.web.auth import (
    COOKIE,
    AuthProblem,
    Principal,
    Role,
    TokenAccepted,
    TokenRefused,
    bearer,
    check_role,
    client_of,
    is_secure,
    token_digest,
)
from forewarn.web.console import Console

MAX_FORM_BYTES = 16_384
_OPEN_SECRET = secrets.token_bytes(32)
_STATE_PRINCIPAL = "forewarn_principal"
_DAY = timedelta(days=1)

router = APIRouter(tags=["console"], include_in_schema=False)


def _session_digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def open_session(console: Console, token: str, principal: Principal, client: str) -> str:
    """Record a new session for ``principal`` (who presented ``token``); its cookie value."""
    now = console.clock.now()
    session_id = secrets.token_urlsafe(32)
    with console.sessions.begin() as db:
        # Keep the table small: sessions over for a day are only history.
        db.execute(
            delete(ConsoleSession).where(
                or_(
                    ConsoleSession.expires_at < now - _DAY,
                    ConsoleSession.revoked_at < now - _DAY,
                )
            )
        )
        db.add(
            ConsoleSession(
                id_digest=_session_digest(session_id),
                token_digest=token_digest(token).hex(),
                role=principal.role.name,
                technician_id=principal.technician,
                csrf=secrets.token_hex(32),
                created_at=now,
                expires_at=now + console.config.settings.web.session_lifetime,
                revoked_at=None,
                client=client,
            )
        )
    return session_id


def session_principal(console: Console, session_id: str) -> Principal | None:
    """Who holds the session ``session_id``, or None if it is unknown, over or withdrawn."""
    now = console.clock.now()
    with console.sessions() as db:
        row = db.get(ConsoleSession, _session_digest(session_id))
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            return None
        # The token decides the role now: a token withdrawn from the configuration ends
        # its sessions, and a changed role applies at the next click.
        holder = console.tokens.principal_of_digest(bytes.fromhex(row.token_digest))
        if holder is None:
            return None
        return Principal(
            holder.role,
            authenticated=True,
            technician=holder.technician,
            csrf=row.csrf,
            name=holder.name,
        )


def revoke_session(console: Console, session_id: str) -> None:
    """End the session ``session_id`` now (sign out)."""
    with console.sessions.begin() as db:
        row = db.get(ConsoleSession, _session_digest(session_id))
        if row is not None and row.revoked_at is None:
            row.revoked_at = console.clock.now()


def _throttle(console: Console, client: str) -> None:
    wait = console.login_limiter.retry_after(client)
    if wait is not None:
        raise AuthProblem(
            429, f"too many wrong tokens from your address; try again in {wait} s", retry_after=wait
        )


def _token_principal(console: Console, token: str, client: str) -> Principal | None:
    """The holder of ``token``; a wrong one counts against ``client``."""
    _throttle(console, client)
    principal = console.tokens.principal_of(token)
    if principal is None:
        console.login_limiter.failed(client)
    return principal


def _client(console: Console, request: Request) -> str:
    return client_of(request, trust_proxy=console.config.settings.web.trust_proxy)


def authenticate_api(console: Console, least: Role, request: Request) -> Principal:
    """The caller of a machine route: a bearer token with at least ``least``."""
    if not console.tokens.configured:
        return Principal(Role.ops, authenticated=False)
    token = bearer(request)
    if token is None:
        raise AuthProblem(401, "send 'Authorization: Bearer <token>'")
    principal = _token_principal(console, token, _client(console, request))
    if principal is None:
        raise AuthProblem(401, "the bearer token is not valid")
    return check_role(principal, least)


def authenticate_page(console: Console, least: Role, request: Request) -> Principal:
    """The caller of a console page: a session cookie (or ``?token=`` once, or a bearer).

    A valid ``?token=`` raises :class:`TokenAccepted`, a wrong one :class:`TokenRefused`;
    a missing or ended session raises an :class:`AuthProblem` marked ``for_page``,
    answered with a page that asks for a token.
    """
    try:
        principal = _page_principal(console, least, request)
    except AuthProblem as problem:
        problem.for_page = True
        raise
    request.state.forewarn_principal = principal
    return principal


def _page_principal(console: Console, least: Role, request: Request) -> Principal:
    if not console.tokens.configured:
        return Principal(Role.ops, authenticated=False)
    client = _client(console, request)
    offered = request.query_params.get("token")
    if offered is not None:
        remaining = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        # One leading slash: "//host" would send the browser to another site.
        path = "/" + request.url.path.lstrip("/")
        location = path + (f"?{urlencode(remaining)}" if remaining else "")
        principal = _token_principal(console, offered, client)
        if principal is None:
            raise TokenRefused("/login?" + urlencode({"next": location, "failed": "1"}))
        raise TokenAccepted(location, offered, principal)
    token = bearer(request)
    if token is not None:
        principal = _token_principal(console, token, client)
        if principal is None:
            raise AuthProblem(401, "the bearer token is not valid")
        return check_role(principal, least)
    cookie = request.cookies.get(COOKIE)
    if cookie is None:
        raise AuthProblem(401, "enter an access token to open the console")
    principal = session_principal(console, cookie)
    if principal is None:
        raise AuthProblem(
            401,
            "your sign-in has ended (signed out, expired, or its token was withdrawn)",
            clear_cookie=True,
        )
    return check_role(principal, least)


def set_session_cookie(
    console: Console, request: Request, response: Response, token: str, principal: Principal
) -> None:
    """Open a session for ``principal`` and give its id to the browser."""
    session_id = open_session(console, token, principal, _client(console, request))
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(console.config.settings.web.session_lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_secure(request, trust_proxy=console.config.settings.web.trust_proxy),
    )


# -- CSRF -----------------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """The hidden field a console form must send back (see the module docstring)."""
    principal = getattr(request.state, _STATE_PRINCIPAL, None)
    if isinstance(principal, Principal) and principal.csrf is not None:
        return principal.csrf
    console = request.app.state.console
    cookie = request.cookies.get(COOKIE)
    if cookie is not None and isinstance(console, Console) and console.tokens.configured:
        found = session_principal(console, cookie)
        if found is not None and found.csrf is not None:
            return found.csrf
    return hmac.new(_OPEN_SECRET, b"open console", hashlib.sha256).hexdigest()


async def form_fields(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, checked for the CSRF field."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "the form is too large")
    fields = {
        k: v[0]
        for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()
    }
    if not hmac.compare_digest(fields.get("csrf", ""), csrf_token(request)):
        problem = AuthProblem(403, "the form has expired or came from another site; reload it")
        problem.for_page = True
        raise problem
    return fields


# -- routes ---------------------------------------------------------------------------------


def _safe_next(value: str | None) -> str:
    """A local path to go to after signing in; anything else goes to the dashboard."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _login_page(
    console: Console, request: Request, next_url: str, message: str | None, status: int
) -> HTMLResponse:
    return console.pages.render(
        request,
        "login.html",
        {"next_url": next_url, "message": message},
        now=console.clock.now(),
        principal=None,
        status_code=status,
    )


def _console(request: Request) -> Console:
    console = request.app.state.console
    assert isinstance(console, Console)
    return console


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None, failed: str | None = None) -> Response:
    """The sign-in page (where a wrong ``?token=`` lands, without the token)."""
    message = "that token is not valid" if failed else None
    return _login_page(
        _console(request), request, _safe_next(next), message, 401 if failed else 200
    )


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Trade a token for a session (no CSRF field: there is no session to forge yet)."""
    console = _console(request)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "the form is too large")
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    next_url = _safe_next(fields.get("next"))
    client = _client(console, request)
    try:
        principal = _token_principal(console, fields.get("token", "").strip(), client)
    except AuthProblem as problem:
        response = _login_page(console, request, next_url, problem.message, problem.status_code)
        response.headers["Retry-After"] = str(problem.retry_after or 60)
        return response
    if principal is None:
        return _login_page(console, request, next_url, "that token is not valid", 401)
    accepted = RedirectResponse(next_url, status_code=303)
    set_session_cookie(console, request, accepted, fields["token"].strip(), principal)
    return accepted


@router.get("/logout")
def logout(request: Request) -> Response:
    """End the session (the row is revoked, not just the cookie dropped)."""
    cookie = request.cookies.get(COOKIE)
    if cookie is not None:
        revoke_session(_console(request), cookie)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
