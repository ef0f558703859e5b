"""Turning every failure into a clear answer: HTML for console pages, JSON elsewhere.

What can go wrong, and the answer:

* no valid token (:class:`AuthProblem`, 401) -> a page with a token form / JSON + WWW-Authenticate;
* a role too low (:class:`AuthProblem`, 403);
* ``?token=`` accepted (:class:`TokenAccepted`) -> session opened, 303 to the same page;
* ``?token=`` wrong (:class:`TokenRefused`) -> 303 to the sign-in page, token dropped;
* too many wrong tokens (:class:`AuthProblem`, 429) -> with ``Retry-After``;
* an unknown id (:class:`PageNotFound`, or no such route) -> 404;
* a bad query or path parameter (``RequestValidationError``) -> 422 naming the parameter;
* the database unreachable or locked (``OperationalError``) -> 503, logged;
* anything else is a bug: 500, with the traceback in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from forewarn.web.auth import COOKIE, AuthProblem, TokenAccepted, TokenRefused
from forewarn.web.console import Console
from forewarn.web.pages import CONSOLE_TAG, PageNotFound
from forewarn.web.signin import set_session_cookie

log = logging.getLogger(__name__)


_FORM_TITLES = {
    403: "Not allowed",
    409: "Nothing was changed",
    413: "Too large",
    422: "Check the form",
    503: "Not done: try again",
}


def _is_page(request: Request) -> bool:
    route = request.scope.get("route")
    if isinstance(route, APIRoute):
        return CONSOLE_TAG in route.tags
    # No route matched (an unknown URL): a browser gets a page, anything else JSON.
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


def _describe(errors: Sequence[Any]) -> list[str]:
    problems = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ())[1:]) or "request"
        given = error.get("input")
        shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
        problems.append(f"{where}: {error.get('msg', 'is not valid')}{shown}")
    return problems


def install_error_handlers(app: FastAPI, console: Console) -> None:
    """Register the handlers on ``app``."""

    def page(request: Request, status: int, title: str, messages: list[str]) -> Response:
        return console.pages.render(
            request,
            "error.html",
            {"status": status, "title": title, "messages": messages},
            now=console.clock.now(),
            principal=None,
            status_code=status,
        )

    async def on_auth_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AuthProblem)
        response: Response
        titles = {401: "Access token needed", 429: "Too many wrong tokens"}
        if exc.for_page:
            title = titles.get(exc.status_code, "Not allowed")
            response = page(request, exc.status_code, title, [exc.message])
        else:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
            response = JSONResponse(
                {"detail": exc.message}, status_code=exc.status_code, headers=headers
            )
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        if exc.clear_cookie:
            response.delete_cookie(COOKIE, path="/")
        return response

    async def on_token_accepted(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TokenAccepted)
        response = RedirectResponse(exc.location, status_code=303)
        set_session_cookie(console, request, response, exc.token, exc.principal)
        return response

    async def on_token_refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TokenRefused)
        return RedirectResponse(exc.location, status_code=303)

    async def on_not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageNotFound)
        return page(request, 404, "Not found", [f"There is no {exc.what}."])

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404 and _is_page(request):
            found = request.scope.get("route") is not None
            message = str(exc.detail) if found else f"Nothing lives at {request.url.path}."
            return page(request, 404, "Not found", [message])
        if _is_page(request) and exc.status_code in _FORM_TITLES:
            # A console button whose action was refused: say why, on a page.
            return page(request, exc.status_code, _FORM_TITLES[exc.status_code], [str(exc.detail)])
        return await http_exception_handler(request, exc)

    async def on_invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if _is_page(request):
            return page(request, 422, "That address is not valid", _describe(exc.errors()))
        return await request_validation_exception_handler(request, exc)

    async def on_database_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OperationalError)
        # The driver's first line says why (refused, locked, no such table); it names
        # hosts and users but never a password.
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "unknown"
        log.error("database unavailable on %s: %s", request.url.path, reason)
        message = "The database is unavailable right now (the server log says why)."
        if _is_page(request):
            return page(request, 503, "Database unavailable", [message])
        return JSONResponse({"detail": message}, status_code=503)

    async def on_bug(request: Request, exc: Exception) -> Response:
        # Starlette logs the traceback after this answer; the page only says where to look.
        message = "Something went wrong in forewarn; the server log has the details."
        if _is_page(request):
            return page(request, 500, "Internal error", [message])
        return JSONResponse({"detail": message}, status_code=500)

    app.add_exception_handler(AuthProblem, on_auth_problem)
    app.add_exception_handler(TokenAccepted, on_token_accepted)
    app.add_exception_handler(TokenRefused, on_token_refused)
    app.add_exception_handler(PageNotFound, on_not_found)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
    app.add_exception_handler(OperationalError, on_database_error)
    app.add_exception_handler(Exception, on_bug)
