"""A technician's phone view: ``/my``, their open jobs with big buttons.

Signed in with a personal token (``technician:<id>:<token>``), a technician sees only the
jobs assigned to them, most urgent first, each with the device, site and address, the
fault and suggested fix, the customer to call and the visit window; the buttons post to
``/tickets/{id}/command`` and run the same handler as an SMS reply (ACK, ENROUTE, ONSITE,
DONE with a closure code and note, NOFAULT, DECLINE). A shared technician token names
nobody, so the page asks for a personal one. Built for a 390 px wide screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from forewarn.notifier.glossary import closure
from forewarn.notifier.locales import when, window
from forewarn.store.models import Customer, Device, Notification, Site, Technician, Ticket
from forewarn.ticketing.commands import VERBS
from forewarn.ticketing.lifecycle import CLOSURE_CODES, WORKING, allowed_actions
from forewarn.ticketing.notices import previous_visit
from forewarn.ticketing.visits import awaiting_answer, booked
from forewarn.web.auth import Principal, Role
from forewarn.web.dependencies import ConsoleDep, Db, page_access

PageTechnician = Annotated[Principal, Depends(page_access(Role.technician))]
router = APIRouter(tags=["console"], include_in_schema=False)

BUTTONS = (
    ("ack", "ACK", "Accept the job"),
    ("enroute", "EN ROUTE", "On my way"),
    ("onsite", "ON SITE", "Arrived"),
    ("nofault", "NO FAULT", "Nothing wrong found"),
    ("decline", "DECLINE", "I cannot take it"),
    ("partsin", "PARTS IN", "The parts are in: plan the return visit"),
)
"""(command, button, what it tells the dispatcher); DONE has its own form."""
_PRIORITY = {"P1": 0, "P2": 1, "P3": 2, "P4": 3}


@dataclass(frozen=True)
class Job:
    """One of a technician's open jobs, with what they need on site."""

    id: int
    status: str
    priority: str
    title: str
    device_id: str | None
    device_model: str | None
    site_name: str | None
    address: str | None
    customer_name: str | None
    customer_phone: str | None
    fault: str
    suggested_fix: str
    visit_start: datetime | None
    visit_end: datetime | None
    visit_state: str
    """``booked`` (the customer confirmed the window), ``offered`` (times sent, no answer
    yet) or ``due`` (no window agreed: by the SLA due time)."""
    visit_text: str
    """The window in the technician's zone, the zone named."""
    previous_visit: str | None
    """How the last visit to this fault ended (repeat visits, return visits for parts)."""
    sla_due_at: datetime | None
    buttons: tuple[tuple[str, str, str], ...]
    can_finish: bool


def my_jobs(session: Session, technician_id: str) -> list[Job]:
    """The open jobs assigned to ``technician_id``: most urgent first; times in the
    technician's own zone."""
    technician = session.get(Technician, technician_id)
    zone = technician.timezone if technician is not None else "UTC"
    rows = session.execute(
        select(Ticket, Device.model, Site.name, Site.address, Customer.name, Customer.phone)
        .outerjoin(Device, Device.id == Ticket.device_id)
        .outerjoin(Site, Site.id == Ticket.site_id)
        .outerjoin(Customer, Customer.id == Ticket.customer_id)
        .where(Ticket.technician_id == technician_id, Ticket.status.in_(WORKING))
        .order_by(
            case(*((Ticket.priority == p, n) for p, n in _PRIORITY.items()), else_=9),
            Ticket.sla_due_at,
            Ticket.id,
        )
    ).all()
    jobs = []
    for ticket, model, site, address, customer, phone in rows:
        allowed = set(allowed_actions(ticket.status))
        start, end = _visit(session, ticket)
        state = (
            "booked"
            if booked(session, ticket.id) is not None
            else "offered"
            if awaiting_answer(session, ticket.id)
            else "due"
        )
        if start is not None and end is not None:
            shown = window(start, end, zone, "en")
        else:
            shown = f"by {when(end, zone, 'en')}" if end is not None else "—"
        last = previous_visit(session, ticket)
        jobs.append(
            Job(
                id=ticket.id,
                status=ticket.status,
                priority=ticket.priority,
                title=ticket.title,
                device_id=ticket.device_id,
                device_model=model,
                site_name=site,
                address=address,
                customer_name=customer,
                customer_phone=phone,
                fault=ticket.fault,
                suggested_fix=ticket.suggested_fix,
                visit_start=start,
                visit_end=end,
                visit_state=state,
                visit_text=shown,
                previous_visit=(
                    f"job #{last['id']}: {closure(last['closure_code'], 'en')}"
                    + (f" — {last['note']}" if last["note"] else "")
                    if last is not None
                    else None
                ),
                sla_due_at=ticket.sla_due_at,
                buttons=tuple(b for b in BUTTONS if VERBS[b[0].upper()] in allowed),
                can_finish="resolve" in allowed,
            )
        )
    return jobs


def _visit(session: Session, ticket: Ticket) -> tuple[datetime | None, datetime | None]:
    """The visit window the customer booked; else the one they were given
    (``technician_assigned``), if any; else until the SLA due time."""
    agreed = booked(session, ticket.id)
    if agreed is not None:
        return agreed.start_at, agreed.end_at
    context = session.scalar(
        select(Notification.context)
        .where(Notification.ticket_id == ticket.id, Notification.event == "technician_assigned")
        .order_by(Notification.id.desc())
        .limit(1)
    )
    visit = (context or {}).get("visit") or {}
    start, end = visit.get("start"), visit.get("end")
    return (
        datetime.fromisoformat(start) if start else None,
        datetime.fromisoformat(end) if end else ticket.sla_due_at,
    )


@router.get("/my", response_class=HTMLResponse)
def my_page(
    request: Request, console: ConsoleDep, principal: PageTechnician, db: Db
) -> HTMLResponse:
    """My jobs (a personal technician token), with the buttons that answer them."""
    jobs = my_jobs(db, principal.technician) if principal.technician else []
    return console.pages.render(
        request,
        "my.html",
        {"jobs": jobs, "closure_codes": [c for c in CLOSURE_CODES if c != "no_fault_found"]},
        now=console.clock.now(),
        principal=principal,
    )
