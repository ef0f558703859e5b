"""The dispatcher's desk: the ``/dispatch`` console page and the ops assign action.

* ``GET /dispatch`` (viewer): the dispatcher queue (nobody eligible, nobody acknowledged)
  with who could take each job now and why the others cannot, and the closure codes per
  rule over the last 30 days, noisiest first;
* ``POST /api/tickets/{id}/assign`` (ops): give a job to a chosen technician. The hard
  filters still hold: an ineligible technician is refused (409) with the reason.

Mounted by ``create_app(extra_routers=[router])``; the routes check their own roles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from forewarn.store import audit
from forewarn.store.models import Alert, Ticket
from forewarn.store.tickets import SqlTicketStore
from forewarn.ticketing import reports
from forewarn.ticketing.tickets import Ticketing
from forewarn.web.auth import Principal, Role, actor
from forewarn.web.console import MAX_ID
from forewarn.web.dependencies import ConsoleDep, Db, api_access, page_access
from forewarn.web.pages import CONSOLE_TAG

router = APIRouter()

Ops = Annotated[Principal, Depends(api_access(Role.ops))]
PageViewer = Annotated[Principal, Depends(page_access(Role.viewer))]
CLOSURES_OVER = timedelta(days=30)


class AssignRequest(BaseModel):
    technician: str = Field(min_length=1, max_length=128)


class AssignResult(BaseModel):
    ticket: int
    status: str
    technician: str


@dataclass(frozen=True)
class QueueRow:
    """One queued job with who could take it now and why the others cannot."""

    ticket: reports.QueuedTicket
    eligible: list[tuple[str, float]]
    excluded: dict[str, str]
    affected: list[str]
    """Other devices the job's cause explains (one incident per site)."""


def record_assignment(
    session: Session, ticket_id: int, technician: str, who: str, now: datetime
) -> None:
    """The audit row of an assignment, in the assignment's transaction."""
    audit.record(
        session,
        at=now,
        actor=who,
        kind="ticket.assign",
        subject=f"ticket:{ticket_id}",
        summary=f"assigned ticket {ticket_id} to {technician}",
        detail={"technician": technician},
    )


@router.post("/api/tickets/{ticket_id}/assign", tags=["ticketing"])
def assign(
    ticket_id: int, body: AssignRequest, principal: Ops, console: ConsoleDep
) -> AssignResult:
    """Assign a job to a chosen eligible technician (refused with the reason otherwise)."""
    now = console.clock.now()
    ticketing = Ticketing.from_config(console.config)
    with console.sessions.begin() as session:
        ticket = (
            session.get(Ticket, ticket_id, with_for_update=True)
            if 0 < ticket_id <= MAX_ID
            else None
        )
        if ticket is None:
            raise HTTPException(404, f"ticket {ticket_id} not found")
        refused = ticketing.assign_to(session, ticket, body.technician, now, principal.role.name)
        if refused is not None:
            raise HTTPException(409, refused)
        record_assignment(session, ticket_id, body.technician, actor(principal, "api"), now)
        return AssignResult(ticket=ticket.id, status=ticket.status, technician=body.technician)


@router.get("/dispatch", response_class=HTMLResponse, tags=[CONSOLE_TAG], include_in_schema=False)
def dispatch_page(
    request: Request, console: ConsoleDep, principal: PageViewer, db: Db
) -> HTMLResponse:
    """The dispatcher queue with each job's candidates, and closure codes per rule."""
    now = console.clock.now()
    ticketing = Ticketing.from_config(console.config)
    rows = []
    for queued in reports.dispatcher_queue(SqlTicketStore(db)):
        ticket = db.get(Ticket, queued.id)
        assert ticket is not None
        decision = ticketing.decide(db, ticket, now)
        affected = db.scalars(
            select(Alert.subject)
            .where(Alert.ticket_id == ticket.id, Alert.subject != (ticket.device_id or ""))
            .distinct()
            .order_by(Alert.subject)
        ).all()
        rows.append(
            QueueRow(
                queued,
                [(r.id, round(r.score, 2)) for r in decision.ranked],
                decision.excluded,
                list(affected),
            )
        )
    return console.pages.render(
        request,
        "dispatch.html",
        {
            "queue": rows,
            "closures": reports.closures_per_rule(SqlTicketStore(db), now - CLOSURES_OVER),
        },
        now=now,
        principal=principal,
    )
