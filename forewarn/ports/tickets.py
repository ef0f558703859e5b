"""Tickets of both kinds, their events, and the order side of delay cases."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class TicketRecord:
    """One ticket as stored: a repair work order (``kind`` ``repair``, a device) or a
    delay case (``delay``, an order). ``id`` is 0 until the store has inserted it.

    ``open_fingerprint`` is set while the ticket holds its episode (a working status of
    :mod:`forewarn.ticketing.lifecycle`); at most one ticket holds a fingerprint.
    """

    kind: str
    fingerprint: str
    status: str
    priority: str
    title: str
    opened_at: datetime
    updated_at: datetime
    id: int = 0
    open_fingerprint: str | None = None
    device_id: str | None = None
    site_id: str | None = None
    customer_id: str | None = None
    technician_id: str | None = None
    fault: str = ""
    suggested_fix: str = ""
    dispatch: Mapping[str, Any] = field(default_factory=dict)
    alert_count: int = 1
    sla_due_at: datetime | None = None
    closed_at: datetime | None = None
    severity: str = "major"
    rule_id: str | None = None
    closure_code: str | None = None
    resolution_note: str = ""
    repeat_visits: int = 0
    previous_ticket_id: int | None = None
    ack_due_at: datetime | None = None
    escalation_step: int = 0
    passed_over: tuple[str, ...] = ()
    accepted_at: datetime | None = None
    resolved_at: datetime | None = None
    cleared_at: datetime | None = None


@dataclass(frozen=True)
class TicketEventRecord:
    """One thing that happened to a ticket; a status change has different statuses."""

    ticket_id: int
    at: datetime
    kind: str
    actor: str
    from_status: str | None
    to_status: str | None
    detail: Mapping[str, Any] = field(default_factory=dict)
    id: int = 0


@dataclass(frozen=True)
class DelayCaseRecord:
    """The order side of a ``delay`` ticket: which order, why, what the customer was told.

    ``pending_notice`` (``delay_notice`` or ``delivered_after_delay``) waits for the
    customer's merge window until ``notice_due_at``; ``resolution`` is ``delivered``,
    ``canceled`` or ``by_person``.
    """

    ticket_id: int
    order_id: str
    first_rule: str
    opened_at: datetime
    id: int = 0
    customer_id: str | None = None
    reasons: tuple[Mapping[str, Any], ...] = ()
    promised_at: datetime | None = None
    estimate_at: datetime | None = None
    notify_customer: bool = True
    pending_notice: str | None = None
    notice_due_at: datetime | None = None
    notice_status: str | None = None
    warned_at: datetime | None = None
    followed_up_at: datetime | None = None
    escalated_at: datetime | None = None
    escalation_reason: str | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None


class TicketExists(Exception):
    """Another writer opened a ticket with this open fingerprint first: use that one."""


class TicketStore(Protocol):
    """Tickets (both kinds) and their events.

    Methods that return a ticket for a decision lock it (``FOR UPDATE`` on PostgreSQL)
    until the transaction ends.
    """

    def get(self, ticket_id: int) -> TicketRecord | None:
        """The ticket, read afresh and locked; None if there is none."""
        ...

    def holding(self, fingerprint: str) -> TicketRecord | None:
        """The ticket that holds the episode ``fingerprint`` now (its open fingerprint)."""
        ...

    def insert(self, ticket: TicketRecord) -> TicketRecord:
        """Store a new ticket and return it with its id. Raises :class:`TicketExists`
        (leaving the transaction usable) if another ticket holds its open fingerprint."""
        ...

    def update(self, ticket: TicketRecord) -> None:
        """Write every field of a ticket read from this store."""
        ...

    def add_event(self, event: TicketEventRecord) -> TicketEventRecord:
        """Record one event of a ticket; returns it with its id."""
        ...

    def events(self, ticket_id: int) -> list[TicketEventRecord]:
        """The ticket's events, oldest first."""
        ...

    def waiting_for_person(self) -> list[TicketRecord]:
        """Tickets a person must act on now, most urgent first (priority, SLA, id):
        escalated ones, open ones with no technician, and assigned ones nobody
        acknowledged after the escalation chain ran out."""
        ...

    def closures(self, since: datetime | None = None) -> dict[str, dict[str, int]]:
        """Per rule, how many of its tickets ended with each closure code (those resolved
        or closed since ``since``)."""
        ...


class DelayCaseStore(Protocol):
    """Delay cases (the order side of ``delay`` tickets) and their waiting notices."""

    def of_ticket(self, ticket_id: int) -> DelayCaseRecord | None:
        """The case of a ``delay`` ticket."""
        ...

    def insert(self, case: DelayCaseRecord) -> DelayCaseRecord:
        """Store a new case and return it with its id."""
        ...

    def update(self, case: DelayCaseRecord) -> None:
        """Write every field of a case read from this store."""
        ...

    def resolved_as(self, order_id: str, resolution: str) -> bool:
        """Whether a case of ``order_id`` ended with ``resolution``."""
        ...

    def notice_due(self, customer_id: str, notice: str, other_than: int) -> datetime | None:
        """The earliest due time of ``notice`` waiting for ``customer_id`` on a case other
        than ``other_than`` (a new notice joins that merge window)."""
        ...

    def notices_due(self, now: datetime) -> list[DelayCaseRecord]:
        """Cases whose waiting notice is due at ``now``, by id."""
        ...

    def notices_waiting(
        self, customer_id: str, notice: str, due_after: datetime
    ) -> list[DelayCaseRecord]:
        """Cases of ``customer_id`` whose ``notice`` waits past ``due_after``, by id."""
        ...

    def next_notice_due(self) -> datetime | None:
        """The earliest due time of a waiting notice, if any notice waits."""
        ...
