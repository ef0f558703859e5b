"""Work for people and "why did I get this?": follow-up tasks, one notification's reasons,
and ops-written status updates to customers, as console pages and under ``/api``.

Reading needs a viewer; closing a task and sending an update need ops. Console forms
carry the session's CSRF field (:mod:`forewarn.web.signin`). The API needs no such
field: it reads only the bearer header, which a browser never adds on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from forewarn.notifier.events import PROACTIVE
from forewarn.notifier.followups import close_task, send_status_update
from forewarn.notifier.privacy import mask_address, scrub
from forewarn.store import audit
from forewarn.store.contacts import FollowUp
from forewarn.store.models import Customer, DeliveryAttempt, Notification, Ticket
from forewarn.web.auth import Principal, Role, actor
from forewarn.web.console import MAX_ID
from forewarn.web.dependencies import ConsoleDep, Db, PageViewer, api_access, page_access
from forewarn.web.pages import CONSOLE_TAG, PageNotFound
from forewarn.web.redaction import known_addresses, redact, sees_bodies_in_full
from forewarn.web.resources import Resource
from forewarn.web.signin import csrf_token, form_fields

MAX_NOTE = 500
REASONS = {
    "human": "asked for a person (HUMAN; before conversations)",
    "free_text": "unrecognised reply (before conversations)",
    "orphan_notice": "notice without follow-up (overdue)",
    "technician_reply": "technician reply",
}

PageOps = Annotated[Principal, Depends(page_access(Role.ops))]
ApiOps = Annotated[Principal, Depends(api_access(Role.ops))]
ApiViewer = Annotated[Principal, Depends(api_access(Role.viewer))]

pages = APIRouter(tags=[CONSOLE_TAG], include_in_schema=False)
api = APIRouter(prefix="/api", tags=["follow-ups"])


# -- resources ------------------------------------------------------------------------------


class FollowUpOut(Resource):
    """A task for a person, with its response due time."""

    id: int
    kind: str
    reason: str
    customer_id: str | None
    customer_name: str | None
    ticket_id: int | None
    notification_id: int | None
    detail: str
    """What the customer wrote (or why the task exists); phone numbers and emails masked."""
    status: str
    opened_at: datetime
    due_at: datetime
    overdue: bool
    closed_at: datetime | None
    closed_by: str | None
    closing_note: str | None = None


class FollowUpList(Resource):
    open: int
    overdue: int
    items: list[FollowUpOut]


class Preference(Resource):
    """The recipient's preferences as they stand now (the row records what was sent)."""

    channels: list[str]
    locale: str
    timezone: str
    quiet_hours: str | None
    opted_out: list[str]


class AttemptOut(Resource):
    at: datetime
    provider: str
    outcome: str
    error: str | None


class NotificationWhy(Resource):
    """One notification and why it was sent: the rule and evidence behind it."""

    id: int
    event: str
    channel: str
    recipient_role: str
    recipient_id: str
    recipient: str
    status: str
    critical: bool
    """Critical messages go out in quiet hours."""
    ticket_id: int | None
    rule: str | None
    rule_version: str | None
    alert_summary: str | None
    evidence: dict[str, Any]
    merged_into: int | None
    """The message that carried this one's content."""
    merged: list[int]
    """For a merged message: the notifications it carries."""
    fallback_of: int | None
    preference: Preference | None
    created_at: datetime
    sent_at: datetime | None
    subject: str | None
    body: str | None
    attempts: list[AttemptOut]


class StatusUpdateRequest(BaseModel):
    note: str = Field(min_length=1, max_length=MAX_NOTE)
    eta: datetime | None = None
    """A new estimated time (ISO 8601 with offset)."""


class StatusUpdateResult(Resource):
    ticket: int
    queued: list[int]
    """The notifications queued (none if the same note was queued this minute)."""


# -- queries --------------------------------------------------------------------------------


def follow_up_list(session: Session, now: datetime, limit: int = 200) -> FollowUpList:
    """Open tasks first, soonest due first; then the latest closed ones."""
    is_open = FollowUp.status == "open"
    rows = session.execute(
        select(FollowUp, Customer.name)
        .outerjoin(Customer, Customer.id == FollowUp.customer_id)
        .order_by(case((is_open, 0), else_=1), case((is_open, FollowUp.due_at)), FollowUp.id.desc())
        .limit(limit)
    ).all()
    items = [_task_out(task, name, now) for task, name in rows]
    return FollowUpList(
        open=sum(t.status == "open" for t in items),
        overdue=sum(t.overdue for t in items),
        items=items,
    )


def _task_out(task: FollowUp, customer_name: str | None, now: datetime) -> FollowUpOut:
    return FollowUpOut(
        id=task.id,
        kind=task.kind,
        reason=REASONS.get(task.kind, task.kind.replace("_", " ")),
        customer_id=task.customer_id,
        customer_name=customer_name,
        ticket_id=task.ticket_id,
        notification_id=task.notification_id,
        detail=scrub(task.detail),
        status=task.status,
        opened_at=task.opened_at,
        due_at=task.due_at,
        overdue=task.status == "open" and task.due_at < now,
        closed_at=task.closed_at,
        closed_by=task.closed_by,
        closing_note=task.closing_note,
    )


def notification_why(
    session: Session, notification_id: int, *, full_body: bool = True
) -> NotificationWhy | None:
    """One notification and its reasons; without ``full_body`` (viewers, technicians) its
    subject and body have phone numbers, emails and street addresses hidden."""
    row = session.get(Notification, notification_id)
    if row is None:
        return None
    subject, body = row.subject, row.body
    if not full_body:
        customer_id = row.recipient_id if row.recipient_role == "customer" else None
        addresses = known_addresses(session, row.ticket_id, customer_id)
        subject = redact(subject, addresses) if subject else subject
        body = redact(body, addresses) if body else body
    alert = row.context.get("alert") or {}
    if not alert and row.context.get("issues"):
        alert = row.context["issues"][0].get("alert") or {}
    preference = None
    if row.recipient_role == "customer":
        customer = session.get(Customer, row.recipient_id)
        if customer is not None:
            preference = Preference(
                channels=list(customer.channels or ("sms", "email")),
                locale=customer.locale,
                timezone=customer.timezone,
                quiet_hours=customer.quiet_hours,
                opted_out=list(customer.opted_out or ()),
            )
    attempts = session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.notification_id == row.id)
        .order_by(DeliveryAttempt.at, DeliveryAttempt.id)
    )
    return NotificationWhy(
        id=row.id,
        event=row.event,
        channel=row.channel,
        recipient_role=row.recipient_role,
        recipient_id=row.recipient_id,
        recipient=mask_address(row.address),
        status=row.status,
        critical=row.critical,
        ticket_id=row.ticket_id,
        rule=alert.get("rule") or None,
        rule_version=alert.get("rule_version") or None,
        alert_summary=alert.get("summary") or None,
        evidence=dict(alert.get("evidence") or {}),
        merged_into=row.merged_into,
        merged=[int(i) for i in row.context.get("merged", []) if int(i) != row.id],
        fallback_of=row.fallback_of,
        preference=preference,
        created_at=row.created_at,
        sent_at=row.sent_at,
        subject=subject,
        body=body,
        attempts=[
            AttemptOut(
                at=a.at,
                provider=a.provider,
                outcome=a.outcome,
                error=scrub(a.error) if a.error else None,
            )
            for a in attempts
        ],
    )


def _close(console: ConsoleDep, task_id: int, by: str, who: str, note: str = "") -> FollowUpOut:
    now = console.clock.now()
    with console.sessions.begin() as session:
        task = session.get(FollowUp, task_id) if 0 < task_id <= MAX_ID else None
        if task is None:
            raise HTTPException(404, f"follow-up {task_id} not found")
        if not close_task(session, task_id, by, now):
            raise HTTPException(409, f"follow-up {task_id} is already closed")
        if note:
            task.closing_note = note
        audit.record(
            session,
            at=now,
            actor=who,
            kind="follow_up.close",
            subject=f"follow_up:{task_id}",
            summary=f"closed follow-up {task_id} ({REASONS.get(task.kind, task.kind)})",
            reason=note,
        )
        customer = session.get(Customer, task.customer_id) if task.customer_id else None
        return _task_out(task, customer.name if customer else None, now)


def _status_update(
    console: ConsoleDep, ticket_id: int, note: str, eta: datetime | None, by: str, who: str
) -> list[int]:
    with console.sessions.begin() as session:
        if not (0 < ticket_id <= MAX_ID) or session.get(Ticket, ticket_id) is None:
            raise HTTPException(404, f"ticket {ticket_id} not found")
        told = session.scalar(
            select(Notification.id).where(
                Notification.ticket_id == ticket_id,
                Notification.recipient_role == "customer",
                Notification.event.in_(PROACTIVE),
            )
        )
        if told is None:
            raise HTTPException(409, "the customer was never told about this ticket")
        now = console.clock.now()
        rows = send_status_update(
            session,
            ticket_id=ticket_id,
            note=note,
            eta=eta.isoformat() if eta else None,
            by=by,
            now=now,
        )
        # The note is a message to the customer: it stays with the notifications (masked
        # below ops), not copied into the audit trail.
        audit.record(
            session,
            at=now,
            actor=who,
            kind="ticket.status_update",
            subject=f"ticket:{ticket_id}",
            summary=f"status update to the customer of ticket {ticket_id} "
            f"({len(note)} characters{', new ETA' if eta else ''})",
            detail={"notifications": [r.id for r in rows]},
        )
        return [r.id for r in rows]


def _who(principal: Principal) -> str:
    return f"{principal.role.name} (console)" if principal.authenticated else "ops (open console)"


# -- console forms --------------------------------------------------------------------------


Form = Annotated[dict[str, str], Depends(form_fields)]


@dataclass(frozen=True)
class _Forms:
    csrf: str


@pages.get("/follow-ups", response_class=HTMLResponse)
def follow_ups_page(
    request: Request, console: ConsoleDep, principal: PageViewer, db: Db
) -> HTMLResponse:
    """Tasks for people: open ones first, overdue highlighted; ops may close them."""
    now = console.clock.now()
    return console.pages.render(
        request,
        "follow_ups.html",
        {"tasks": follow_up_list(db, now), "forms": _Forms(csrf_token(request))},
        now=now,
        principal=principal,
    )


@pages.post("/follow-ups/{task_id}/close")
def close_from_page(
    task_id: int, console: ConsoleDep, principal: PageOps, form: Form
) -> RedirectResponse:
    note = form.get("note", "").strip()[:MAX_NOTE]
    _close(console, task_id, _who(principal), actor(principal, "console"), note)
    return RedirectResponse("/follow-ups", status_code=303)


@pages.get("/notifications/{notification_id}", response_class=HTMLResponse)
def notification_page(
    request: Request, console: ConsoleDep, principal: PageViewer, db: Db, notification_id: int
) -> HTMLResponse:
    """One notification and why it was sent."""
    full = sees_bodies_in_full(principal)
    found = (
        notification_why(db, notification_id, full_body=full)
        if 0 < notification_id <= MAX_ID
        else None
    )
    if found is None:
        raise PageNotFound(f"notification {notification_id}")
    return console.pages.render(
        request,
        "notification.html",
        {"n": found},
        now=console.clock.now(),
        principal=principal,
    )


@pages.get("/tickets/{ticket_id}/status-update", response_class=HTMLResponse)
def status_update_form(
    request: Request, console: ConsoleDep, principal: PageOps, ticket_id: int
) -> HTMLResponse:
    """The form ops use to write to the customer about a ticket."""
    return console.pages.render(
        request,
        "status_update.html",
        {"ticket_id": ticket_id, "forms": _Forms(csrf_token(request))},
        now=console.clock.now(),
        principal=principal,
    )


@pages.post("/tickets/{ticket_id}/status-update")
def status_update_from_page(
    ticket_id: int, console: ConsoleDep, principal: PageOps, form: Form
) -> RedirectResponse:
    note = form.get("note", "").strip()
    if not note or len(note) > MAX_NOTE:
        raise HTTPException(422, f"write a note of 1 to {MAX_NOTE} characters")
    _status_update(console, ticket_id, note, None, _who(principal), actor(principal, "console"))
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)


# -- API ------------------------------------------------------------------------------------


@api.get("/follow-ups")
def list_follow_ups(console: ConsoleDep, db: Db, _: ApiViewer) -> FollowUpList:
    """Tasks for people: open ones first, soonest due first."""
    return follow_up_list(db, console.clock.now())


@api.post("/follow-ups/{task_id}/close")
def close_follow_up(task_id: int, console: ConsoleDep, principal: ApiOps) -> FollowUpOut:
    """Close an open task (404 unknown, 409 already closed)."""
    return _close(console, task_id, f"{principal.role.name} (api)", actor(principal, "api"))


@api.get("/notifications/{notification_id}")
def notification(db: Db, notification_id: int, principal: ApiViewer) -> NotificationWhy:
    """One notification with its rule, evidence, preferences and delivery attempts.

    Below ops, phone numbers, emails and street addresses in the body are hidden."""
    full = sees_bodies_in_full(principal)
    found = (
        notification_why(db, notification_id, full_body=full)
        if 0 < notification_id <= MAX_ID
        else None
    )
    if found is None:
        raise HTTPException(404, f"notification {notification_id} not found")
    return found


@api.post("/tickets/{ticket_id}/status-update")
def status_update(
    ticket_id: int, body: StatusUpdateRequest, console: ConsoleDep, principal: ApiOps
) -> StatusUpdateResult:
    """Queue a status update to the ticket's customer; closes its orphan-notice tasks.

    404 unknown ticket, 409 when the customer was never told about it.
    """
    queued = _status_update(
        console,
        ticket_id,
        body.note,
        body.eta,
        f"{principal.role.name} (api)",
        actor(principal, "api"),
    )
    return StatusUpdateResult(ticket=ticket_id, queued=queued)
