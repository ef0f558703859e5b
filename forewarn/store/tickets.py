"""Tickets and their events in SQL (SQLite and PostgreSQL), and ticketing's unit of work.

The interfaces are documented in :mod:`forewarn.ports`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from forewarn.ports import TicketEventRecord, TicketExists, TicketRecord
from forewarn.store.alerts import SqlAlertStore
from forewarn.store.contacts import SqlContactStore
from forewarn.store.models import Ticket, TicketEvent
from forewarn.store.orders import SqlDelayCaseStore, SqlOrderStore
from forewarn.store.outbox import SqlOutbox

_TICKET_FIELDS = tuple(f.name for f in fields(TicketRecord) if f.name != "id")


def ticket_record(row: Ticket) -> TicketRecord:
    """The stored row as a value."""
    values: dict[str, Any] = {name: getattr(row, name) for name in _TICKET_FIELDS}
    values["passed_over"] = tuple(row.passed_over or ())
    values["dispatch"] = dict(row.dispatch or {})
    return TicketRecord(id=row.id, **values)


def _event_record(row: TicketEvent) -> TicketEventRecord:
    return TicketEventRecord(
        ticket_id=row.ticket_id,
        at=row.at,
        kind=row.kind,
        actor=row.actor,
        from_status=row.from_status,
        to_status=row.to_status,
        detail=dict(row.detail or {}),
        id=row.id,
    )


def _write(row: Ticket, ticket: TicketRecord) -> None:
    for name in _TICKET_FIELDS:
        setattr(row, name, getattr(ticket, name))
    row.passed_over = list(ticket.passed_over)
    row.dispatch = dict(ticket.dispatch)


class SqlTicketStore:
    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, ticket_id: int) -> TicketRecord | None:
        self._session.flush()  # nothing pending is lost to the fresh read below
        row = self._session.get(Ticket, ticket_id, with_for_update=True, populate_existing=True)
        return None if row is None else ticket_record(row)

    def holding(self, fingerprint: str) -> TicketRecord | None:
        row = self._session.scalars(
            select(Ticket).where(Ticket.open_fingerprint == fingerprint).with_for_update()
        ).first()
        return None if row is None else ticket_record(row)

    def insert(self, ticket: TicketRecord) -> TicketRecord:
        row = Ticket()
        _write(row, ticket)
        try:
            with self._session.begin_nested():
                self._session.add(row)
                self._session.flush()
        except IntegrityError as exc:
            raise TicketExists(ticket.open_fingerprint) from exc
        return ticket_record(row)

    def update(self, ticket: TicketRecord) -> None:
        row = self._session.get(Ticket, ticket.id)
        if row is None:
            raise KeyError(f"ticket {ticket.id} is not stored")
        _write(row, ticket)
        self._session.flush()

    def add_event(self, event: TicketEventRecord) -> TicketEventRecord:
        row = TicketEvent(
            ticket_id=event.ticket_id,
            at=event.at,
            kind=event.kind,
            actor=event.actor,
            from_status=event.from_status,
            to_status=event.to_status,
            detail=dict(event.detail),
        )
        self._session.add(row)
        self._session.flush()
        return _event_record(row)

    def events(self, ticket_id: int) -> list[TicketEventRecord]:
        rows = self._session.scalars(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)
        )
        return [_event_record(r) for r in rows]

    def waiting_for_person(self) -> list[TicketRecord]:
        unowned = Ticket.technician_id.is_(None)
        unanswered = (
            (Ticket.status == "assigned")
            & Ticket.ack_due_at.is_(None)
            & (Ticket.escalation_step > 0)
        )
        rows = self._session.scalars(
            select(Ticket)
            .where(
                Ticket.open_fingerprint.is_not(None),
                or_(unowned, unanswered, Ticket.status == "escalated"),
            )
            .order_by(Ticket.priority, Ticket.sla_due_at, Ticket.id)
        )
        return [ticket_record(r) for r in rows]

    def closures(self, since: datetime | None = None) -> dict[str, dict[str, int]]:
        query = (
            select(Ticket.rule_id, Ticket.closure_code, func.count())
            .where(Ticket.closure_code.is_not(None), Ticket.rule_id.is_not(None))
            .group_by(Ticket.rule_id, Ticket.closure_code)
        )
        if since is not None:
            query = query.where(or_(Ticket.resolved_at >= since, Ticket.closed_at >= since))
        counts: dict[str, dict[str, int]] = {}
        for rule, code, count in self._session.execute(query).all():
            counts.setdefault(str(rule), {})[str(code)] = int(count)
        return counts


class SqlTicketStores:
    """Ticketing's stores over one session (the caller owns the transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.tickets = SqlTicketStore(session)
        self.cases = SqlDelayCaseStore(session)
        self.outbox = SqlOutbox(session)
        self.contacts = SqlContactStore(session)
        self.orders = SqlOrderStore(session)
        self.alerts = SqlAlertStore(session)


class SqlTicketStorage:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    @contextmanager
    def begin(self) -> Iterator[SqlTicketStores]:
        with self._sessions.begin() as session:
            yield SqlTicketStores(session)
