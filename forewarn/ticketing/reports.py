"""Read-side questions about tickets, answered by the ticket store (one query each in SQL).

* :func:`closures_per_rule`: how each rule's tickets ended. A rule whose tickets end as
  ``no_fault_found`` or ``cleared_before_visit`` more often than ``fixed`` is noisy: its
  threshold or hold time wants tuning before it sends more technicians out for nothing.
* :func:`dispatcher_queue`: the tickets a person must act on now (nobody eligible, or
  nobody acknowledged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from forewarn.ports import TicketRecord, TicketStore

NOISY = ("no_fault_found", "cleared_before_visit")


@dataclass(frozen=True)
class RuleClosures:
    rule: str
    total: int
    by_code: dict[str, int] = field(default_factory=dict)

    @property
    def noise_ratio(self) -> float:
        """Share of the rule's closed tickets that found nothing to fix."""
        return sum(self.by_code.get(code, 0) for code in NOISY) / self.total if self.total else 0.0


def closures_per_rule(tickets: TicketStore, since: datetime | None = None) -> list[RuleClosures]:
    """Closure codes counted per rule (tickets closed since ``since``), noisiest first."""
    rows = [
        RuleClosures(rule, sum(codes.values()), dict(codes))
        for rule, codes in tickets.closures(since).items()
    ]
    return sorted(rows, key=lambda r: (-r.noise_ratio, -r.total, r.rule))


@dataclass(frozen=True)
class QueuedTicket:
    id: int
    status: str
    priority: str
    title: str
    why: str
    sla_due_at: datetime | None
    opened_at: datetime


def dispatcher_queue(tickets: TicketStore) -> list[QueuedTicket]:
    """Tickets a person must act on now: no technician (among them escalated delay
    cases), or assigned and nobody acknowledged after the escalation chain ran out; the
    most urgent first."""
    return [
        QueuedTicket(t.id, t.status, t.priority, t.title, _why(t), t.sla_due_at, t.opened_at)
        for t in tickets.waiting_for_person()
    ]


def _why(ticket: TicketRecord) -> str:
    if ticket.status == "escalated":
        return "needs a person"
    return "no eligible technician" if ticket.technician_id is None else "nobody acknowledged"
