"""The FastAPI dependencies of the console's routes: its shared parts, a session, a caller.

Routes declare them as annotated parameters (``db: Db``, ``principal: PageViewer``); the
values come from the :class:`Console` that ``create_app`` put on ``app.state``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from forewarn.web.auth import Principal, Role
from forewarn.web.console import Console
from forewarn.web.signin import authenticate_api, authenticate_page


def console_of(request: Request) -> Console:
    """The console the request's application was built with."""
    console = request.app.state.console
    if not isinstance(console, Console):
        raise RuntimeError("the app was not built by forewarn.web.app.create_app")
    return console


def db_session(request: Request) -> Iterator[Session]:
    """A session for one request: reads only, closed (rolled back) after the response."""
    with console_of(request).sessions() as session:
        yield session


def page_access(least: Role) -> Callable[[Request], Principal]:
    """A dependency admitting console page callers with at least the role ``least``."""

    def dependency(request: Request) -> Principal:
        return authenticate_page(console_of(request), least, request)

    return dependency


def api_access(least: Role) -> Callable[[Request], Principal]:
    """A dependency admitting bearer-token callers with at least the role ``least``."""

    def dependency(request: Request) -> Principal:
        return authenticate_api(console_of(request), least, request)

    return dependency


ConsoleDep = Annotated[Console, Depends(console_of)]
Db = Annotated[Session, Depends(db_session)]
PageViewer = Annotated[Principal, Depends(page_access(Role.viewer))]
ApiViewer = Annotated[Principal, Depends(api_access(Role.viewer))]
