"""Ticketing's stores of :mod:`forewarn.ports` in memory: for backtests and unit tests.

One writer at a time (a replay, a test): a unit of work is the store itself, and a block
that raises is not rolled back.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime

from forewarn.notifier.held import decide
from forewarn.ports import (
    DelayCaseRecord,
    NotificationRecord,
    Person,
    TicketEventRecord,
    TicketExists,
    TicketRecord,
)


@dataclass
class MemoryTicketStore:
    rows: dict[int, TicketRecord] = field(default_factory=dict)
    by_open: dict[str, int] = field(default_factory=dict)
    log: list[TicketEventRecord] = field(default_factory=list)

    def get(self, ticket_id: int) -> TicketRecord | None:
        return self.rows.get(ticket_id)

    def holding(self, fingerprint: str) -> TicketRecord | None:
        ticket_id = self.by_open.get(fingerprint)
        return None if ticket_id is None else self.rows[ticket_id]

    def insert(self, ticket: TicketRecord) -> TicketRecord:
        if ticket.open_fingerprint is not None and ticket.open_fingerprint in self.by_open:
            raise TicketExists(ticket.open_fingerprint)
        stored = replace(ticket, id=len(self.rows) + 1)
        self.rows[stored.id] = stored
        if stored.open_fingerprint is not None:
            self.by_open[stored.open_fingerprint] = stored.id
        return stored

    def update(self, ticket: TicketRecord) -> None:
        before = self.rows.get(ticket.id)
        if before is None:
            raise KeyError(f"ticket {ticket.id} is not stored")
        if ticket.open_fingerprint != before.open_fingerprint:
            holder = self.by_open.get(ticket.open_fingerprint or "")
            if holder is not None and holder != ticket.id:
                raise TicketExists(ticket.open_fingerprint)
            if before.open_fingerprint is not None:
                del self.by_open[before.open_fingerprint]
            if ticket.open_fingerprint is not None:
                self.by_open[ticket.open_fingerprint] = ticket.id
        self.rows[ticket.id] = ticket

    def add_event(self, event: TicketEventRecord) -> TicketEventRecord:
        stored = replace(event, id=len(self.log) + 1)
        self.log.append(stored)
        return stored

    def events(self, ticket_id: int) -> list[TicketEventRecord]:
        return [e for e in self.log if e.ticket_id == ticket_id]

    def waiting_for_person(self) -> list[TicketRecord]:
        waiting = [
            t
            for t in self.rows.values()
            if t.open_fingerprint is not None
            and (
                t.technician_id is None
                or t.status == "escalated"
                or (t.status == "assigned" and t.ack_due_at is None and t.escalation_step > 0)
            )
        ]
        return sorted(
            waiting,
            key=lambda t: (t.priority, t.sla_due_at is None, t.sla_due_at or t.opened_at, t.id),
        )

    def closures(self, since: datetime | None = None) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for t in self.rows.values():
            if t.closure_code is None or t.rule_id is None:
                continue
            ended = [at for at in (t.resolved_at, t.closed_at) if at is not None]
            if since is not None and not any(at >= since for at in ended):
                continue
            codes = counts.setdefault(t.rule_id, {})
            codes[t.closure_code] = codes.get(t.closure_code, 0) + 1
        return counts


@dataclass
class MemoryDelayCaseStore:
    rows: dict[int, DelayCaseRecord] = field(default_factory=dict)

    def of_ticket(self, ticket_id: int) -> DelayCaseRecord | None:
        return next((c for c in self.rows.values() if c.ticket_id == ticket_id), None)

    def insert(self, case: DelayCaseRecord) -> DelayCaseRecord:
        stored = replace(case, id=len(self.rows) + 1)
        self.rows[stored.id] = stored
        return stored

    def update(self, case: DelayCaseRecord) -> None:
        if case.id not in self.rows:
            raise KeyError(f"delay case {case.id} is not stored")
        self.rows[case.id] = case

    def resolved_as(self, order_id: str, resolution: str) -> bool:
        return any(c.order_id == order_id and c.resolution == resolution for c in self._all())

    def notice_due(self, customer_id: str, notice: str, other_than: int) -> datetime | None:
        due = [
            c.notice_due_at
            for c in self._waiting(customer_id, notice)
            if c.id != other_than and c.notice_due_at is not None
        ]
        return min(due, default=None)

    def notices_due(self, now: datetime) -> list[DelayCaseRecord]:
        return [
            c
            for c in self._all()
            if c.pending_notice is not None
            and c.notice_due_at is not None
            and c.notice_due_at <= now
        ]

    def notices_waiting(
        self, customer_id: str, notice: str, due_after: datetime
    ) -> list[DelayCaseRecord]:
        return [
            c
            for c in self._waiting(customer_id, notice)
            if c.notice_due_at is not None and c.notice_due_at > due_after
        ]

    def _all(self) -> Iterable[DelayCaseRecord]:
        return (self.rows[i] for i in sorted(self.rows))

    def _waiting(self, customer_id: str, notice: str) -> Iterable[DelayCaseRecord]:
        return (
            c for c in self._all() if c.customer_id == customer_id and c.pending_notice == notice
        )


@dataclass
class MemoryOutbox:
    tickets: MemoryTicketStore
    rows: list[NotificationRecord] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)

    def enqueue(self, notification: NotificationRecord) -> NotificationRecord | None:
        if notification.dedupe_key in self.keys:
            return None
        stored = replace(notification, id=len(self.rows) + 1, status="queued")
        self.rows.append(stored)
        self.keys.add(stored.dedupe_key)
        return stored

    def queued(self, ticket_id: int) -> list[NotificationRecord]:
        return [n for n in self.rows if n.ticket_id == ticket_id]

    def follow(self, ticket_id: int, now: datetime) -> None:
        ticket = self.tickets.rows.get(ticket_id)
        if ticket is None:
            return
        for index, row in enumerate(self.rows):
            if row.ticket_id != ticket_id or row.recipient_role != "customer":
                continue
            if row.status != "queued":
                continue
            verdict = decide(row.event, row.critical, ticket.status, ticket.severity)
            if verdict == "supersede":
                self.rows[index] = replace(row, status="superseded")
            elif verdict == "raise":
                self.rows[index] = replace(
                    row, critical=True, next_attempt_at=min(row.next_attempt_at, now)
                )


@dataclass
class MemoryContactStore:
    people: dict[str, Person] = field(default_factory=dict)

    def customer(self, customer_id: str) -> Person | None:
        return self.people.get(customer_id)


@dataclass
class MemoryOrderStore:
    delivered_at: dict[str, datetime] = field(default_factory=dict)
    """Filled by whoever feeds the orders (a replay)."""

    def delivered(self, order_ids: Collection[str]) -> dict[str, datetime]:
        return {o: self.delivered_at[o] for o in order_ids if o in self.delivered_at}


class MemoryTicketStores:
    """Every ticketing store in memory; :meth:`begin` hands out the store itself."""

    def __init__(self, customers: Iterable[Person] = ()) -> None:
        self.tickets = MemoryTicketStore()
        self.cases = MemoryDelayCaseStore()
        self.outbox = MemoryOutbox(self.tickets)
        self.contacts = MemoryContactStore({p.id: p for p in customers})
        self.orders = MemoryOrderStore()

    @contextmanager
    def begin(self) -> Iterator[MemoryTicketStores]:
        yield self
