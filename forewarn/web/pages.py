"""The console's HTML pages: server-rendered, read-only, every one needs at least a viewer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from forewarn.store.models import Ticket
from forewarn.ticketing.lifecycle import CLOSURE_CODES
from forewarn.ticketing.tickets import Ticketing
from forewarn.web import queries
from forewarn.web.auth import Principal, Role
from forewarn.web.console import MAX_ID, Console
from forewarn.web.dependencies import ConsoleDep, Db, PageViewer
from forewarn.web.dispatch_table import dispatch_table, mentioned_technicians
from forewarn.web.redaction import sees_bodies_in_full
from forewarn.web.resources import Page
from forewarn.web.timeline import ticket_timeline

CONSOLE_TAG = "console"
"""Tag of every page route; error handlers answer these with HTML instead of JSON."""

Offset = Annotated[int, Query(ge=0, le=10_000_000, description="rows to skip")]
Limit = Annotated[int, Query(ge=1, le=500, description="rows per page")]
Status = Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$", description="only this status")]

router = APIRouter(tags=[CONSOLE_TAG], include_in_schema=False)


class PageNotFound(Exception):
    """An id in a page's URL names nothing; answered with a 404 page."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


@dataclass(frozen=True)
class Pager:
    """Where a page of rows sits in the list, with links either side keeping the filters."""

    first: int
    last: int
    total: int
    previous_url: str | None
    next_url: str | None


def _pager(request: Request, page: Page, shown: int) -> Pager:
    params = {k: v for k, v in request.query_params.items() if k not in {"offset", "token"}}

    def url(offset: int) -> str:
        query = urlencode({**params, "offset": offset} if offset else params)
        return request.url.path + (f"?{query}" if query else "")

    return Pager(
        first=page.offset + 1 if shown else 0,
        last=page.offset + shown,
        total=page.total,
        previous_url=url(max(0, page.offset - page.limit)) if page.offset > 0 else None,
        next_url=url(page.offset + page.limit) if page.offset + shown < page.total else None,
    )


def _render(
    console: Console,
    request: Request,
    template: str,
    principal: Principal,
    now: datetime | None = None,
    **context: Any,
) -> HTMLResponse:
    # One clock reading per page: every "5 min ago" on it is relative to the same now,
    # the one its counts were taken at.
    return console.pages.render(
        request, template, context, now=now or console.clock.now(), principal=principal
    )


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, console: ConsoleDep, principal: PageViewer, db: Db) -> Response:
    """Counts on top, then the latest open alerts and tickets (a technician signed in
    with a personal token goes to their own jobs)."""
    if principal.technician:
        return RedirectResponse("/my", status_code=303)
    now = console.clock.now()
    return _render(
        console,
        request,
        "dashboard.html",
        principal,
        now=now,
        overview=queries.overview(db, now, console.silent_after),
        alerts=queries.alert_page(db, show="open", limit=10),
        tickets=queries.ticket_page(db, show="open", limit=10),
    )


@router.get("/devices", response_class=HTMLResponse)
def devices(
    request: Request,
    console: ConsoleDep,
    principal: PageViewer,
    db: Db,
    show: queries.DeviceShow = "all",
    offset: Offset = 0,
    limit: Limit = 200,
) -> HTMLResponse:
    """The fleet: site, model, last report and open alerts of each device."""
    now = console.clock.now()
    page = queries.device_page(db, now, console.silent_after, show=show, offset=offset, limit=limit)
    return _render(
        console,
        request,
        "devices.html",
        principal,
        now=now,
        page=page,
        show=show,
        silent_after=console.silent_after,
        paging=_pager(request, page, len(page.items)),
    )


@router.get("/alerts", response_class=HTMLResponse)
def alerts(
    request: Request,
    console: ConsoleDep,
    principal: PageViewer,
    db: Db,
    show: queries.AlertShow = "open",
    offset: Offset = 0,
    limit: Limit = 200,
) -> HTMLResponse:
    """Open alerts, or resolved ones, or all."""
    page = queries.alert_page(db, show=show, offset=offset, limit=limit)
    pager = _pager(request, page, len(page.items))
    return _render(console, request, "alerts.html", principal, page=page, show=show, paging=pager)


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert(
    request: Request, console: ConsoleDep, principal: PageViewer, db: Db, alert_id: int
) -> HTMLResponse:
    """One alert and why it fired: each state change with its evidence."""
    detail = queries.alert_detail(db, alert_id) if 0 < alert_id <= MAX_ID else None
    if detail is None:
        raise PageNotFound(f"alert {alert_id}")
    return _render(console, request, "alert.html", principal, alert=detail)


@router.get("/tickets", response_class=HTMLResponse)
def tickets(
    request: Request,
    console: ConsoleDep,
    principal: PageViewer,
    db: Db,
    show: queries.TicketShow = "open",
    offset: Offset = 0,
    limit: Limit = 200,
) -> Response:
    """Open tickets, or closed ones, or all (a technician's personal token: their jobs)."""
    if principal.technician:
        return RedirectResponse("/my", status_code=303)
    page = queries.ticket_page(db, show=show, offset=offset, limit=limit)
    pager = _pager(request, page, len(page.items))
    return _render(console, request, "tickets.html", principal, page=page, show=show, paging=pager)


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket(
    request: Request, console: ConsoleDep, principal: PageViewer, db: Db, ticket_id: int
) -> HTMLResponse:
    """One ticket: people, dispatch reasons, timeline and notifications."""
    full = sees_bodies_in_full(principal)
    detail = (
        queries.ticket_detail(db, ticket_id, full_bodies=full) if 0 < ticket_id <= MAX_ID else None
    )
    if detail is None or (principal.technician and detail.technician_id != principal.technician):
        # A technician sees only their own jobs (and learns nothing about others').
        raise PageNotFound(f"ticket {ticket_id}")
    names = queries.technician_names(db, mentioned_technicians(detail.dispatch))
    now = console.clock.now()
    return _render(
        console,
        request,
        "ticket.html",
        principal,
        now=now,
        ticket=detail,
        dispatch=dispatch_table(detail.dispatch, names),
        choices=assign_choices(console, db, ticket_id, now) if principal.role >= Role.ops else None,
        closure_codes=CLOSURE_CODES,
        timeline=ticket_timeline(db, ticket_id, now, full_bodies=full),
    )


@dataclass(frozen=True)
class AssignChoices:
    """Who could take a job now (best first, with scores) and why the others cannot."""

    eligible: list[tuple[str, str, float]]
    """(technician id, name, score)."""
    excluded: list[tuple[str, str, str]]
    """(technician id, name, reason)."""


ASSIGNABLE = ("open", "declined", "assigned")
"""Statuses a dispatcher may (re)assign from (``Ticketing.assign_to`` says the same)."""


def assign_choices(
    console: Console, db: Session, ticket_id: int, now: datetime
) -> AssignChoices | None:
    """The dispatch decision for the ticket now, for the assign form; None if not assignable."""
    row = db.get(Ticket, ticket_id)
    if row is None or row.status not in ASSIGNABLE:
        return None
    decision = Ticketing(console.config.settings.ticketing).decide(db, row, now)
    names = queries.technician_names(db, [*(r.id for r in decision.ranked), *decision.excluded])
    return AssignChoices(
        eligible=[(r.id, names.get(r.id, r.id), round(r.score, 2)) for r in decision.ranked],
        excluded=[(t, names.get(t, t), why) for t, why in sorted(decision.excluded.items())],
    )


@router.get("/notifications", response_class=HTMLResponse)
def notifications(
    request: Request,
    console: ConsoleDep,
    principal: PageViewer,
    db: Db,
    status: Status = None,
    offset: Offset = 0,
    limit: Limit = 200,
) -> HTMLResponse:
    """The notification log, newest first, addresses masked."""
    page = queries.notification_page(db, status=status, offset=offset, limit=limit)
    return _render(
        console,
        request,
        "notifications.html",
        principal,
        page=page,
        status=status,
        statuses=queries.notifications_by_status(db),
        paging=_pager(request, page, len(page.items)),
    )


@router.get("/quarantine", response_class=HTMLResponse)
def quarantine(
    request: Request,
    console: ConsoleDep,
    principal: PageViewer,
    db: Db,
    offset: Offset = 0,
    limit: Limit = 200,
) -> HTMLResponse:
    """Rejected inputs with their reason and a safe preview."""
    page = queries.quarantine_page(db, offset=offset, limit=limit)
    pager = _pager(request, page, len(page.items))
    return _render(
        console,
        request,
        "quarantine.html",
        principal,
        page=page,
        paging=pager,
        can_release=console.can_release,
    )


FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    b'<rect width="32" height="32" rx="7" fill="#1d4e89"/>'
    b'<path d="M16 6 L27 25 H5 Z" fill="#f2b134"/>'
    b'<rect x="14.6" y="12" width="2.8" height="7" fill="#1d4e89"/>'
    b'<rect x="14.6" y="20.5" width="2.8" height="2.6" fill="#1d4e89"/></svg>'
)


@router.get("/favicon.ico")
def favicon() -> Response:
    """The tab icon (an SVG: every browser the console supports draws it)."""
    return Response(
        FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"}
    )
