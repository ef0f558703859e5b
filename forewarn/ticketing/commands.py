"""Technician commands, by SMS reply or the API: ``ACK 123``, ``ENROUTE 123``, ``ONSITE 123``,
``DONE 123 [FIXED|CUSTOMER|PARTS] <note>``, ``NOFAULT 123 <note>``, ``DECLINE 123``,
``PARTSIN 123`` (the parts for a return visit are in).

``DONE 123 PARTS <note>`` does not close the job: the ticket waits for the parts
(``awaiting_parts``), the customer is told they are on order (no all-clear, no survey),
and ``PARTSIN 123`` (or ops, from the console) sends it back to dispatch for the return
visit, whose windows are offered to the customer.

Case-insensitive and tolerant of extra spaces and a ``#`` before the number. Every answer
is a reply for the sender: an unknown command, someone else's job or a move the ticket
does not allow gets a helpful sentence, never silence. Repeating a command (an SMS sent
twice) changes nothing the second time and says so.

A declined job is handed on at once when the caller passes a :class:`Redispatch` (the
:class:`~forewarn.ticketing.tickets.Ticketing` built from the config, which knows the
dispatch preferences and escalation settings); without one, the next scheduled sweep
(``ticketing.sweep_interval``) hands it on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from sqlalchemy.orm import Session

from forewarn.store.models import Technician, Ticket
from forewarn.store.tickets import SqlTicketStores
from forewarn.ticketing.delays import settled_by_person
from forewarn.ticketing.lifecycle import CLOSURE_CODES, WORKING, IllegalTransition
from forewarn.ticketing.notices import (
    send_job_cancelled,
    send_parts_ordered,
    send_resolved,
    send_technician_assigned,
)
from forewarn.ticketing.transitions import apply
from forewarn.ticketing.visits import end_visits

VERBS = {
    "ACK": "accept",
    "ACCEPT": "accept",
    "ENROUTE": "depart",
    "ONSITE": "arrive",
    "DONE": "resolve",
    "NOFAULT": "no_fault",
    "DECLINE": "decline",
    "PARTSIN": "parts_arrived",
    "PARTS_IN": "parts_arrived",
}
"""Command word -> lifecycle action."""
CODE_WORDS = {
    "FIXED": "fixed",
    "CUSTOMER": "customer_cause",
    "CUSTOMER_CAUSE": "customer_cause",
    "PARTS": "parts_needed",
    "PARTS_NEEDED": "parts_needed",
}
"""Optional first word after ``DONE 123``: the closure code (default ``fixed``)."""
OPS_ACTIONS = ("close", "cancel")
"""Further actions ops may take through the API."""
MAX_NOTE = 1000

_COMMAND = re.compile(r"^\s*([A-Za-z_]+)\s*#?\s*(\d{1,12})\b\s*(.*?)\s*$", re.DOTALL)

HELP = (
    "forewarn: reply ACK <job> to accept, ENROUTE <job> when you leave, ONSITE <job> on "
    "arrival, DONE <job> <note> when fixed (DONE <job> PARTS <note> if parts are needed, "
    "PARTSIN <job> when they are in), NOFAULT <job> if nothing is wrong, DECLINE <job> if "
    "you cannot take it."
)


@dataclass(frozen=True)
class Command:
    verb: str
    """The command word as the technician wrote it, upper-cased."""
    action: str
    ticket_id: int
    note: str = ""
    closure_code: str | None = None


Refusal = Literal["unknown_technician", "unknown_ticket", "not_yours", "illegal", "repeated"]


@dataclass(frozen=True)
class Outcome:
    """What a command did: ``refused`` says why nothing happened (None: it was applied)."""

    reply: str
    refused: Refusal | None = None
    status: str | None = None

    @property
    def changed(self) -> bool:
        return self.refused is None


class NotUnderstood(ValueError):
    """The text is not a command; the message is the helpful reply."""


def parse(text: str) -> Command:
    """``text`` as a command; raises :class:`NotUnderstood` with the reply to send."""
    match = _COMMAND.match(text or "")
    if not match:
        word = (text or "").strip().split(maxsplit=1)[0].upper() if (text or "").strip() else ""
        if word in VERBS:
            raise NotUnderstood(
                f"Which job? Send {word} followed by the job number, e.g. {word} 123."
            )
        raise NotUnderstood(f"Sorry, that is not a command I know. {HELP}")
    word, number, rest = (
        match.group(1).upper(),
        int(match.group(2)),
        " ".join(match.group(3).split()),
    )
    action = VERBS.get(word)
    if action is None:
        raise NotUnderstood(f"Sorry, '{word}' is not a command I know. {HELP}")
    code: str | None = None
    if action == "resolve":
        first, _, remainder = rest.partition(" ")
        if first.upper() in CODE_WORDS:
            code, rest = CODE_WORDS[first.upper()], remainder
        else:
            code = "fixed"
        if code == "parts_needed":
            action = "await_parts"  # not fixed: the job stays open for the return visit
    elif action == "no_fault":
        code = "no_fault_found"
    return Command(word, action, number, rest[:MAX_NOTE], code)


class Redispatch(Protocol):
    """Who hands a declined job on at once and plans a return visit (``Ticketing``)."""

    def dispatch(self, session: Session, ticket: Ticket, now: datetime) -> Technician | None: ...

    def parts_arrived(
        self, session: Session, ticket: Ticket, now: datetime, actor: str
    ) -> str | None: ...


def handle_technician_sms(
    session: Session,
    technician_id: str,
    text: str,
    now: datetime,
    redispatch: Redispatch | None = None,
) -> str:
    """Run the command in an SMS from ``technician_id`` and return the reply to send.

    The caller (the inbound SMS webhook) owns the transaction and has already matched the
    sender's number to the technician. With ``redispatch`` a DECLINE is handed on at once.
    """
    try:
        command = parse(text)
    except NotUnderstood as problem:
        return str(problem)
    return run(session, command, now, technician_id=technician_id, redispatch=redispatch).reply


def technician_commands(
    redispatch: Redispatch,
) -> Callable[[Session, str, str, datetime], str]:
    """:func:`handle_technician_sms` bound to ``redispatch``, with the four-argument
    signature the inbound SMS webhook calls (``commands=`` of its router)."""

    def handle(session: Session, technician_id: str, text: str, now: datetime) -> str:
        return handle_technician_sms(session, technician_id, text, now, redispatch)

    return handle


def run(
    session: Session,
    command: Command,
    now: datetime,
    *,
    technician_id: str | None,
    redispatch: Redispatch | None = None,
) -> Outcome:
    """Apply ``command`` for a technician, or for ops when ``technician_id`` is None."""
    technician = session.get(Technician, technician_id) if technician_id else None
    if technician_id is not None and (technician is None or not technician.active):
        return Outcome(
            "forewarn does not know you as an active technician; call the dispatcher.",
            "unknown_technician",
        )
    ticket = session.get(Ticket, command.ticket_id, with_for_update=True)
    job = f"Job #{command.ticket_id}"
    if ticket is None:
        return Outcome(
            f"{job} does not exist. Check the number in your work order.", "unknown_ticket"
        )
    if technician_id is not None and ticket.technician_id != technician_id:
        return Outcome(
            f"{job} is not assigned to you, so nothing was changed.", "not_yours", ticket.status
        )
    actor = f"technician:{technician_id}" if technician_id else "ops"
    repeated = _already(ticket, command.action)
    if repeated:
        return Outcome(
            f"{job} is already {ticket.status.replace('_', ' ')}.", "repeated", ticket.status
        )
    if command.closure_code is not None and command.closure_code not in CLOSURE_CODES:
        return Outcome(f"Unknown closure code '{command.closure_code}'.", "illegal", ticket.status)
    assigned = session.get(Technician, ticket.technician_id) if ticket.technician_id else None
    detail: dict[str, object] = {"command": command.verb}
    if command.note:
        detail["note"] = command.note
    if command.closure_code:
        detail["closure_code"] = command.closure_code
    if command.action == "parts_arrived" and redispatch is not None and ticket.kind == "repair":
        problem = redispatch.parts_arrived(session, ticket, now, actor)
        if problem is not None:
            return Outcome(f"{job}: {command.verb} is not possible now ({problem}).", "illegal")
        return Outcome(
            f"{job}: parts in. The return visit is being planned with the customer.",
            None,
            ticket.status,
        )
    try:
        event = apply(session, ticket, command.action, actor=actor, now=now, detail=detail)
    except IllegalTransition:
        return Outcome(
            f"{job} is {ticket.status.replace('_', ' ')}: {command.verb} is not possible now.",
            "illegal",
            ticket.status,
        )
    reply = f"{job}: {ticket.status.replace('_', ' ')}."
    if ticket.kind == "delay":
        # A delay case has no technician and its customer notices are the delay case's
        # own (merged per customer): ending it ends the case, nothing more.
        if ticket.status not in WORKING:
            cancelled = command.action == "cancel"
            ticket.closure_code = "cancelled" if cancelled else command.closure_code
            ticket.resolution_note = command.note
            settled_by_person(SqlTicketStores(session), ticket.id, now)
        return Outcome(reply, None, ticket.status)
    if command.action == "accept" and assigned is not None:
        send_technician_assigned(session, ticket, event, now, assigned)
        reply = f"Thanks, {job} is yours. Reply ENROUTE {ticket.id} when you leave."
    elif command.action == "decline":
        ticket.passed_over = [
            *ticket.passed_over,
            *([ticket.technician_id] if ticket.technician_id else []),
        ]
        ticket.technician_id = None
        reply = f"OK, {job} goes to another technician."
        if redispatch is None:
            ticket.ack_due_at = now  # the next sweep hands it to the next best technician
        else:
            ticket.ack_due_at = None
            redispatch.dispatch(session, ticket, now)
    elif command.action in ("resolve", "no_fault"):
        ticket.closure_code = command.closure_code
        ticket.resolution_note = command.note
        end_visits(session, ticket, visited=True)
        send_resolved(session, ticket, event, now, survey=True)
        reply = f"{job} closed as {(command.closure_code or 'fixed').replace('_', ' ')}. Thank you!"
    elif command.action == "await_parts":
        ticket.resolution_note = command.note
        end_visits(session, ticket, visited=True)
        send_parts_ordered(session, ticket, event, now)
        reply = (
            f"{job} waits for parts; the customer is told. Reply PARTSIN {ticket.id} when "
            f"the parts are in and we plan the return visit."
        )
    elif command.action == "parts_arrived":
        # Without ticketing at hand the job waits, open, in the dispatcher queue.
        ticket.technician_id = None
        reply = f"{job}: parts in. A dispatcher will plan the return visit."
    elif command.action == "cancel":
        ticket.closure_code = "cancelled"
        ticket.resolution_note = command.note
        end_visits(session, ticket, visited=False)
        if assigned is not None:
            send_job_cancelled(session, ticket, event, now, assigned, command.note or "cancelled")
        send_resolved(session, ticket, event, now, survey=False)
    elif command.action == "depart":
        reply = (
            f"{job}: en route. Reply ONSITE {ticket.id} on arrival, DONE {ticket.id} when fixed."
        )
    return Outcome(reply, None, ticket.status)


def _already(ticket: Ticket, action: str) -> bool:
    return (action, ticket.status) in {
        ("accept", "accepted"),
        ("depart", "en_route"),
        ("arrive", "on_site"),
        ("resolve", "resolved"),
        ("no_fault", "no_fault_found"),
        ("close", "closed"),
        ("cancel", "cancelled"),
        ("await_parts", "awaiting_parts"),
    }
