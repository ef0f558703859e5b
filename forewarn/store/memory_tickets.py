"""Ticketing's stores of :mod:`forewarn.ports` in memory: for backtests and unit tests.

One writer at a time (a replay, a test): a unit of work is the store itself, and a block
that raises is not rolled back.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime

from forewarn.feeds.mapping import EventRecord
from forewarn.monitors.transit import TransitKey, TransitTimes
from forewarn.notifier.held import decide
from forewarn.ports import (
    DelayCaseRecord,
    NotificationRecord,
    OrderState,
    Person,
    TicketEventRecord,
    TicketExists,
    TicketRecord,
)
from forewarn.store.memory import MemoryStore


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


class MemoryDelayCaseStore:
    def __init__(self) -> None:
        self.rows: dict[int, DelayCaseRecord] = {}
        self._by_ticket: dict[int, int] = {}
        self._waiting: dict[int, DelayCaseRecord] = {}
        """The cases with a notice waiting, by id."""
        self._ended: Counter[tuple[str, str]] = Counter()
        """How many cases of (order, resolution) ended so."""

    def of_ticket(self, ticket_id: int) -> DelayCaseRecord | None:
        case_id = self._by_ticket.get(ticket_id)
        return None if case_id is None else self.rows[case_id]

    def insert(self, case: DelayCaseRecord) -> DelayCaseRecord:
        stored = replace(case, id=len(self.rows) + 1)
        self._by_ticket.setdefault(stored.ticket_id, stored.id)
        self._keep(stored)
        return stored

    def update(self, case: DelayCaseRecord) -> None:
        if case.id not in self.rows:
            raise KeyError(f"delay case {case.id} is not stored")
        self._keep(case)

    def resolved_as(self, order_id: str, resolution: str) -> bool:
        return self._ended[(order_id, resolution)] > 0

    def notice_due(self, customer_id: str, notice: str, other_than: int) -> datetime | None:
        due = [
            c.notice_due_at
            for c in self._pending(customer_id, notice)
            if c.id != other_than and c.notice_due_at is not None
        ]
        return min(due, default=None)

    def notices_due(self, now: datetime) -> list[DelayCaseRecord]:
        return [
            c for c in self._pending() if c.notice_due_at is not None and c.notice_due_at <= now
        ]

    def notices_waiting(
        self, customer_id: str, notice: str, due_after: datetime
    ) -> list[DelayCaseRecord]:
        return [
            c
            for c in self._pending(customer_id, notice)
            if c.notice_due_at is not None and c.notice_due_at > due_after
        ]

    def next_notice_due(self) -> datetime | None:
        return min(
            (c.notice_due_at for c in self._waiting.values() if c.notice_due_at is not None),
            default=None,
        )

    def _keep(self, case: DelayCaseRecord) -> None:
        before = self.rows.get(case.id)
        if before is not None and before.resolution is not None:
            self._ended[(before.order_id, before.resolution)] -= 1
        if case.resolution is not None:
            self._ended[(case.order_id, case.resolution)] += 1
        self.rows[case.id] = case
        if case.pending_notice is not None:
            self._waiting[case.id] = case
        else:
            self._waiting.pop(case.id, None)

    def _pending(
        self, customer_id: str | None = None, notice: str | None = None
    ) -> Iterable[DelayCaseRecord]:
        return (
            self._waiting[i]
            for i in sorted(self._waiting)
            if customer_id is None
            or (
                self._waiting[i].customer_id == customer_id
                and self._waiting[i].pending_notice == notice
            )
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

    def save_customer(self, person: Person) -> None:
        self.people[person.id] = person


class MemoryOrderStore:
    def __init__(self) -> None:
        self.rows: dict[str, OrderState] = {}
        self._events: set[tuple[str, str, str, datetime]] = set()
        self._due: list[tuple[datetime, str]] = []
        """A heap of (next check, order); entries the order has since moved on from are
        dropped when they come up."""
        self._transit: dict[TransitKey, TransitTimes] = {}

    def delivered(self, order_ids: Collection[str]) -> dict[str, datetime]:
        found = (self.rows.get(o) for o in order_ids)
        return {o.id: o.delivered_at for o in found if o is not None and o.delivered_at}

    def get(self, order_id: str) -> OrderState | None:
        return self.rows.get(order_id)

    def save(self, order: OrderState) -> None:
        self.rows[order.id] = order
        if order.status == "open" and order.next_check_at is not None:
            heapq.heappush(self._due, (order.next_check_at, order.id))

    def add_event(self, order_id: str, feed: str, event: EventRecord, now: datetime) -> bool:
        key = (order_id, event.meaning, event.code, event.at)
        if key in self._events:
            return False
        self._events.add(key)
        return True

    def due(self, now: datetime, limit: int) -> list[OrderState]:
        found: dict[str, OrderState] = {}
        kept: list[tuple[datetime, str]] = []
        while self._due and self._due[0][0] <= now and len(found) < limit:
            at, order_id = heapq.heappop(self._due)
            if order_id not in found and self._current(at, order_id):
                found[order_id] = self.rows[order_id]
                kept.append((at, order_id))
        for entry in kept:  # still due until they are saved with a later check
            heapq.heappush(self._due, entry)
        return list(found.values())

    def next_check(self) -> datetime | None:
        while self._due and not self._current(*self._due[0]):
            heapq.heappop(self._due)
        return self._due[0][0] if self._due else None

    def recheck_open(self, now: datetime) -> None:
        for order in list(self.rows.values()):
            if order.status == "open":
                self.save(replace(order, next_check_at=now))

    def deliveries(self, since: datetime, until: datetime) -> list[OrderState]:
        return [
            o
            for o in self.rows.values()
            if o.delivered_at is not None and since < o.delivered_at <= until
        ]

    def save_transit(self, groups: Mapping[TransitKey, TransitTimes], now: datetime) -> None:
        self._transit = dict(groups)

    def transit(self) -> dict[TransitKey, TransitTimes]:
        return dict(self._transit)

    def _current(self, at: datetime, order_id: str) -> bool:
        order = self.rows[order_id]
        return order.status == "open" and order.next_check_at == at


class MemoryTicketStores:
    """Every ticketing store in memory; :meth:`begin` hands out the store itself."""

    def __init__(self, customers: Iterable[Person] = (), alerts: MemoryStore | None = None) -> None:
        self.tickets = MemoryTicketStore()
        self.cases = MemoryDelayCaseStore()
        self.outbox = MemoryOutbox(self.tickets)
        self.contacts = MemoryContactStore({p.id: p for p in customers})
        self.orders = MemoryOrderStore()
        self.alerts = alerts if alerts is not None else MemoryStore()

    @contextmanager
    def begin(self) -> Iterator[MemoryTicketStores]:
        yield self
