"""Applying the lifecycle to a stored ticket: every change is a ticket event.

Used for both ticket kinds (repair work orders and delay cases). The caller owns the
transaction; the event, the ticket's new state and any notices commit together.

:func:`changes` is the one place that says what an action does to a ticket's fields;
:func:`note` the one writer of ticket events (through the
:class:`~forewarn.ports.TicketStore`); after each event the notices of the ticket still
waiting in the outbox are re-decided from the ticket as it is now
(:meth:`~forewarn.ports.Outbox.follow`). :func:`move` applies an action to a ticket
value in a store; :func:`apply` and :func:`record` do the same for a loaded ORM row.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from forewarn.ports import TicketEventRecord, TicketRecord, TicketStores
from forewarn.store.models import Ticket
from forewarn.store.tickets import SqlTicketStores
from forewarn.ticketing.lifecycle import WORKING, transition


class TicketLike(Protocol):
    """What a ticket event needs of a ticket (an ORM row or a :class:`TicketRecord`)."""

    @property
    def id(self) -> int: ...

    @property
    def status(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def open_fingerprint(self) -> str | None: ...


def changes(ticket: TicketLike, action: str, now: datetime) -> dict[str, Any]:
    """The fields ``action`` changes on ``ticket`` at ``now`` (pure).

    Raises :class:`~forewarn.ticketing.lifecycle.IllegalTransition` when the action is
    not allowed from the ticket's status.
    """
    before = ticket.status
    after = transition(before, action)
    changed: dict[str, Any] = {"status": after, "updated_at": now}
    if after not in WORKING:
        # The episode is over: a recurrence reopens this ticket or opens a new one.
        changed["open_fingerprint"] = None
    elif ticket.open_fingerprint is None:
        changed["open_fingerprint"] = ticket.fingerprint
    if after not in ("assigned", "declined"):
        changed["ack_due_at"] = None  # someone owns it (or nobody can): escalation stops
    if after == "accepted":
        changed["accepted_at"] = now
    if after in ("resolved", "no_fault_found"):
        changed["resolved_at"] = now
    if after in ("closed", "cancelled"):
        changed["closed_at"] = now
    if after == "open" and before != "open":
        changed.update(closed_at=None, resolved_at=None, closure_code=None)
    return changed


def note(
    stores: TicketStores,
    ticket: TicketLike,
    now: datetime,
    kind: str,
    actor: str,
    detail: dict[str, Any] | None = None,
    *,
    from_status: str | None = None,
    to_status: str | None = None,
    opened: bool = False,
) -> TicketEventRecord:
    """A ticket event; without statuses it records that the status did not change, and
    ``opened`` records the first event of a new ticket (no status before it)."""
    event = stores.tickets.add_event(
        TicketEventRecord(
            ticket_id=ticket.id,
            at=now,
            kind=kind,
            actor=actor,
            from_status=None if opened else from_status or ticket.status,
            to_status=to_status or ticket.status,
            detail=detail or {},
        )
    )
    # A notice still waiting (quiet hours, merge window, budget, outage) is re-decided
    # from the ticket as it is now: dropped, raised to critical, or left as it is.
    stores.outbox.follow(ticket.id, now)
    return event


def move(
    stores: TicketStores,
    ticket: TicketRecord,
    action: str,
    *,
    actor: str,
    now: datetime,
    detail: dict[str, Any] | None = None,
    kind: str | None = None,
) -> tuple[TicketRecord, TicketEventRecord]:
    """Move ``ticket`` by ``action``, store it and record the event (kind defaults to the
    action); returns the ticket as it is now and the event."""
    moved = replace(ticket, **changes(ticket, action, now))
    stores.tickets.update(moved)
    event = note(stores, moved, now, kind or action, actor, detail, from_status=ticket.status)
    return moved, event


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
) -> TicketEventRecord:
    """:func:`note` for a loaded ORM row."""
    session.flush()
    return note(
        SqlTicketStores(session),
        ticket,
        now,
        kind,
        actor,
        detail,
        from_status=from_status,
        to_status=to_status,
    )


def record_opened(
    session: Session, ticket: Ticket, now: datetime, actor: str, detail: dict[str, Any]
) -> TicketEventRecord:
    """The first event of a new ORM row: no status before it."""
    session.flush()
    return note(SqlTicketStores(session), ticket, now, "opened", actor, detail, opened=True)


def apply(
    session: Session,
    ticket: Ticket,
    action: str,
    *,
    actor: str,
    now: datetime,
    detail: dict[str, Any] | None = None,
    kind: str | None = None,
) -> TicketEventRecord:
    """:func:`move` for a loaded ORM row: the row changes in place."""
    before = ticket.status
    for name, value in changes(ticket, action, now).items():
        setattr(ticket, name, value)
    return record(session, ticket, now, kind or action, actor, detail, from_status=before)
