"""Applying the lifecycle to a stored ticket: every change is a ``ticket_events`` row.

Used for both ticket kinds (repair work orders and delay cases). The caller owns the
transaction; the row, the ticket's new state and any notices commit together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from forewarn.notifier.held import follow_ticket
from forewarn.store.models import Ticket, TicketEvent
from forewarn.ticketing.lifecycle import WORKING, transition


def record(
    session: Session,
    ticket: Ticket,
    now: datetime,
    kind: str,
    actor: str,
    detail: dict[str, Any] | None = None,
    *,
    from_status: str | None = None,
    to_status: str | None = None,
) -> TicketEvent:
    """A ticket event row; without statuses it records that the status did not change."""
    event = TicketEvent(
        ticket_id=ticket.id,
        at=now,
        kind=kind,
        actor=actor,
        from_status=ticket.status if from_status is None else from_status,
        to_status=ticket.status if to_status is None else to_status,
        detail=detail or {},
    )
    session.add(event)
    session.flush()
    # A notice still waiting (quiet hours, merge window, budget, outage) is re-decided
    # from the ticket as it is now: dropped, raised to critical, or left as it is.
    follow_ticket(session, ticket, now)
    return event


def apply(
    session: Session,
    ticket: Ticket,
    action: str,
    *,
    actor: str,
    now: datetime,
    detail: dict[str, Any] | None = None,
    kind: str | None = None,
) -> TicketEvent:
    """Move ``ticket`` by ``action`` and record it (event kind defaults to the action).

    Raises :class:`~forewarn.ticketing.lifecycle.IllegalTransition` and changes nothing
    when the action is not allowed from the ticket's status.
    """
    before = ticket.status
    after = transition(before, action)
    ticket.status = after
    ticket.updated_at = now
    if after not in WORKING:
        # The episode is over: a recurrence reopens this ticket or opens a new one.
        ticket.open_fingerprint = None
        ticket.ack_due_at = None
    elif ticket.open_fingerprint is None:
        ticket.open_fingerprint = ticket.fingerprint
    if after not in ("assigned", "declined"):
        ticket.ack_due_at = None  # someone owns it (or nobody can): escalation stops
    if after == "accepted":
        ticket.accepted_at = now
    if after in ("resolved", "no_fault_found"):
        ticket.resolved_at = now
    if after in ("closed", "cancelled"):
        ticket.closed_at = now
    if after == "open" and before != "open":
        ticket.closed_at = None
        ticket.resolved_at = None
        ticket.closure_code = None
    return record(
        session, ticket, now, kind or action, actor, detail, from_status=before, to_status=after
    )
