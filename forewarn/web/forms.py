"""The console's buttons that need no running monitors: tickets, notifications, quarantine.

Every route is a form POST from a console page: it needs a signed-in role (ops unless
said otherwise) and the session's CSRF field (:func:`forewarn.web.signin.form_fields`),
calls the domain function the API and the SMS commands call, and answers with a
redirect back to the page (303), or with a page saying why nothing was done (404, 409,
422). Actions that cannot be undone need the form's ``confirm`` box ticked.

* ``POST /tickets/{id}/assign`` — give the job to an eligible technician
  (:meth:`Ticketing.assign_to`: the hard filters still hold);
* ``POST /tickets/{id}/command`` — ``resolve`` with a closure code (DONE or NOFAULT, as
  by SMS), ``close`` a resolved job, or ``cancel``, as ops; the technician commands for
  the job's own technician (:func:`commands.run`);
* ``POST /notifications/{id}/resend`` — queue a failed message again (a new outbox row,
  to the recipient's current address and preferences; the failed row stays as it was);
* ``POST /quarantine/{id}/drop`` — delete a rejected input for good;
* ``POST /quarantine/{id}/release`` — publish a rejected MQTT message again to its topic,
  so it passes the same gate as any message (it is quarantined again if still bad).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import RedirectResponse
from sqlalchemy import delete
from sqlalchemy.orm import Session

from forewarn.notifier.outbox import (
    Recipient,
    customer_recipient,
    enqueue,
    technician_recipient,
)
from forewarn.notifier.outbox import (
    Role as RecipientRole,
)
from forewarn.store import audit
from forewarn.store.models import Customer, Notification, Quarantine, Technician, Ticket
from forewarn.ticketing import commands
from forewarn.ticketing.lifecycle import CLOSURE_CODES
from forewarn.ticketing.tickets import Ticketing
from forewarn.web.auth import Principal, Role, actor
from forewarn.web.console import MAX_ID, Console
from forewarn.web.dependencies import ConsoleDep, page_access
from forewarn.web.dispatching import record_assignment
from forewarn.web.signin import form_fields

log = logging.getLogger(__name__)

CONSOLE_TAG = "console"
PageOps = Annotated[Principal, Depends(page_access(Role.ops))]
PageTechnician = Annotated[Principal, Depends(page_access(Role.technician))]
Form = Annotated[dict[str, str], Depends(form_fields)]
TECHNICIAN_WORDS = ("ack", "enroute", "onsite", "done", "nofault", "decline")
_STATUS_OF = {"unknown_ticket": 404, "not_yours": 403, "unknown_technician": 403, "illegal": 409}

Publisher = Callable[[str, bytes], None]
"""Publishes a payload to an MQTT topic (quarantine release); raises OSError if it cannot."""


def caller_name(principal: Principal) -> str:
    """How the console records who acted."""
    if principal.technician:
        return f"technician:{principal.technician}"
    return f"{principal.role.name} (console)" if principal.authenticated else "ops (open console)"


def confirmed(form: dict[str, str]) -> None:
    """Refuse a form whose 'I understand' box is not ticked (the browser asks first)."""
    if form.get("confirm") != "yes":
        raise HTTPException(422, "tick the box to confirm: this cannot be undone")


def _id(value: int, what: str) -> int:
    if not 0 < value <= MAX_ID:
        raise HTTPException(404, f"{what} {value} not found")
    return value


def run_ticket_command(
    console: Console,
    principal: Principal,
    ticket_id: int,
    word: str,
    *,
    note: str = "",
    closure_code: str | None = None,
    technician: str | None = None,
) -> commands.Outcome:
    """Run a command on a ticket exactly as the SMS reply or the API would.

    ``technician`` acts as that technician (a personal token always acts as its own);
    None acts as ops (``close`` and ``cancel`` need ops). Raises HTTPException with the
    command's own answer when it is refused.
    """
    if principal.technician is not None:
        technician = principal.technician
    if principal.role < Role.ops and technician is None:
        raise HTTPException(403, "a shared technician token cannot act for a person")
    if word in commands.OPS_ACTIONS:
        if principal.role < Role.ops:
            raise HTTPException(403, f"'{word}' needs the ops role")
        command = commands.Command(word.upper(), word, ticket_id, note, closure_code)
        technician = None
    elif word in TECHNICIAN_WORDS:
        code = f"{closure_code.upper()} " if closure_code else ""
        try:
            command = commands.parse(f"{word.upper()} {ticket_id} {code}{note}")
        except commands.NotUnderstood as problem:
            raise HTTPException(422, str(problem)) from problem
    else:
        raise HTTPException(422, f"unknown command {word!r}")
    now = console.clock.now()
    with console.sessions.begin() as session:
        outcome = commands.run(
            session,
            command,
            now,
            technician_id=technician,
            redispatch=Ticketing(console.config.settings.ticketing),
        )
        if outcome.changed:
            who = actor(principal, "console")
            record_command(session, ticket_id, word, outcome, who, now, note, closure_code)
    if outcome.refused in _STATUS_OF:
        raise HTTPException(_STATUS_OF[outcome.refused], outcome.reply)
    return outcome


def record_command(
    session: Session,
    ticket_id: int,
    word: str,
    outcome: commands.Outcome,
    who: str,
    now: datetime,
    note: str = "",
    closure_code: str | None = None,
) -> None:
    """The audit row of a ticket command run from the console or the API."""
    code = f" ({closure_code})" if closure_code else ""
    audit.record(
        session,
        at=now,
        actor=who,
        kind="ticket.command",
        subject=f"ticket:{ticket_id}",
        summary=f"{word.upper()}{code} on ticket {ticket_id}: now {outcome.status}",
        reason=note,
        detail={"command": word, "status": outcome.status, "closure_code": closure_code},
    )


def make_router(publish: Publisher | None = None) -> APIRouter:
    """The routes above; ``publish`` enables quarantine release (None: not offered)."""
    router = APIRouter(tags=[CONSOLE_TAG], include_in_schema=False)

    @router.post("/tickets/{ticket_id}/assign")
    def assign(
        ticket_id: int, console: ConsoleDep, principal: PageOps, form: Form
    ) -> RedirectResponse:
        technician = form.get("technician", "").strip()
        if not technician:
            raise HTTPException(422, "choose a technician")
        ticketing = Ticketing(console.config.settings.ticketing)
        with console.sessions.begin() as session:
            ticket = session.get(Ticket, _id(ticket_id, "ticket"), with_for_update=True)
            if ticket is None:
                raise HTTPException(404, f"ticket {ticket_id} not found")
            now = console.clock.now()
            refused = ticketing.assign_to(session, ticket, technician, now, caller_name(principal))
            if refused is None:
                who = actor(principal, "console")
                record_assignment(session, ticket_id, technician, who, now)
        if refused is not None:
            raise HTTPException(409, refused)
        return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)

    @router.post("/tickets/{ticket_id}/command")
    def command(
        ticket_id: int, console: ConsoleDep, principal: PageTechnician, form: Form
    ) -> RedirectResponse:
        word = form.get("command", "")
        note = form.get("note", "").strip()[: commands.MAX_NOTE]
        code = form.get("closure_code") or None
        if code is not None and code not in CLOSURE_CODES:
            raise HTTPException(422, f"unknown closure code {code!r}")
        if word == "resolve":
            # The console's "close with a closure code": what DONE / NOFAULT do by SMS.
            word, code = ("nofault", None) if code == "no_fault_found" else ("done", code)
            if word == "done" and code is None:
                raise HTTPException(422, "choose a closure code")
        if word in ("close", "cancel", "done", "nofault"):
            confirmed(form)
        run_ticket_command(
            console, principal, _id(ticket_id, "ticket"), word, note=note, closure_code=code
        )
        back = form.get("back", "")
        if back not in (f"/tickets/{ticket_id}", "/my", f"/my/{ticket_id}"):
            back = f"/tickets/{ticket_id}"
        return RedirectResponse(back, status_code=303)

    @router.post("/notifications/{notification_id}/resend")
    def resend(
        notification_id: int, console: ConsoleDep, principal: PageOps, _: Form
    ) -> RedirectResponse:
        queued = resend_notification(
            console, _id(notification_id, "notification"), actor(principal, "console")
        )
        return RedirectResponse(f"/notifications/{queued}", status_code=303)

    @router.post("/quarantine/{row_id}/drop")
    def drop(row_id: int, console: ConsoleDep, principal: PageOps, form: Form) -> RedirectResponse:
        confirmed(form)
        with console.sessions.begin() as session:
            gone = session.execute(delete(Quarantine).where(Quarantine.id == _id(row_id, "row")))
            if getattr(gone, "rowcount", 0) != 1:
                raise HTTPException(404, f"quarantined input {row_id} not found (dropped already?)")
            audit.record(
                session,
                at=console.clock.now(),
                actor=actor(principal, "console"),
                kind="quarantine.drop",
                subject=f"quarantine:{row_id}",
                summary=f"dropped quarantined input {row_id}",
            )
        log.info("quarantined input %s dropped by %s", row_id, caller_name(principal))
        return RedirectResponse("/quarantine", status_code=303)

    @router.post("/quarantine/{row_id}/release")
    def release(row_id: int, console: ConsoleDep, principal: PageOps, _: Form) -> RedirectResponse:
        if publish is None:
            raise HTTPException(409, "this process has no MQTT connection to release through")
        with console.sessions.begin() as session:
            row = session.get(Quarantine, _id(row_id, "row"), with_for_update=True)
            if row is None:
                raise HTTPException(404, f"quarantined input {row_id} not found")
            if row.source != "mqtt":
                raise HTTPException(
                    409, f"only MQTT messages can be released (this is {row.source})"
                )
            try:
                publish(row.origin, row.payload)
            except OSError as problem:
                raise HTTPException(503, f"the broker did not take it: {problem}") from problem
            # Published: it is a message again, judged afresh by the gate.
            session.delete(row)
            audit.record(
                session,
                at=console.clock.now(),
                actor=actor(principal, "console"),
                kind="quarantine.release",
                subject=f"quarantine:{row_id}",
                summary=f"released quarantined input {row_id} to its topic again",
                detail={"rejected_for": row.reason},
            )
        log.info("quarantined input %s released by %s", row_id, caller_name(principal))
        return RedirectResponse("/quarantine", status_code=303)

    return router


def resend_notification(console: Console, notification_id: int, who: str) -> int:
    """Queue a failed notification again; returns the new row's id.

    The new row goes to the recipient's address and preferences as they are now (a
    customer who opted out of the channel is not written to) and is rendered afresh;
    the failed row stays as the record of what went wrong. One resend per failed row.
    """
    now = console.clock.now()
    with console.sessions.begin() as session:
        row = session.get(Notification, notification_id)
        if row is None:
            raise HTTPException(404, f"notification {notification_id} not found")
        if row.status != "failed":
            raise HTTPException(409, f"notification {notification_id} is {row.status}, not failed")
        recipient = _recipient_now(session, row)
        if row.channel not in recipient.addresses:
            raise HTTPException(
                409,
                f"{row.recipient_role} {row.recipient_id} cannot be reached by {row.channel} now",
            )
        queued = enqueue(
            session,
            dedupe_key=f"resend:{row.id}",
            event=row.event,
            recipient=recipient,
            channel=row.channel,
            context=dict(row.context),
            now=now,
            not_before=now,
            ticket_id=row.ticket_id,
            critical=row.critical,
        )
        if queued is None:
            raise HTTPException(409, f"notification {notification_id} was resent already")
        audit.record(
            session,
            at=now,
            actor=who,
            kind="notification.resend",
            subject=f"notification:{notification_id}",
            summary=f"resent failed {row.channel} notification {notification_id} as {queued.id}",
            detail={"queued": queued.id},
        )
        return queued.id


def _recipient_now(session: Session, row: Notification) -> Recipient:
    if row.recipient_role == "customer":
        customer = session.get(Customer, row.recipient_id)
        if customer is not None:
            return customer_recipient(customer)
    if row.recipient_role == "technician":
        technician = session.get(Technician, row.recipient_id)
        if technician is not None:
            return technician_recipient(technician)
    # A dispatcher or supervisor (from the config), or a person no longer in the store:
    # the address the message was meant for.
    role: RecipientRole = "technician" if row.recipient_role == "technician" else "dispatcher"
    if row.recipient_role == "customer":
        role = "customer"
    return Recipient(
        role=role,
        id=row.recipient_id,
        name=str((row.context.get("recipient") or {}).get("name", row.recipient_id)),
        locale=row.locale,
        timezone=str((row.context.get("recipient") or {}).get("timezone", "UTC")),
        addresses={row.channel: row.address},
        channels=(row.channel,),
    )
