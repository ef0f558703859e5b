"""Read-side questions about tickets, answered with one SQL query each.

* :func:`closures_per_rule`: how each rule's tickets ended. A rule whose tickets end as
  ``no_fault_found`` or ``cleared_before_visit`` more often than ``fixed`` is noisy: its
  threshold or hold time wants tuning before it sends more technicians out for nothing.
* :func:`dispatcher_queue`: the tickets a person must act on now (nobody eligible, or
  nobody acknowledged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from forewarn.store.models import Ticket

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


def closures_per_rule(session: Session, since: datetime | None = None) -> list[RuleClosures]:
    """Closure codes counted per rule (tickets closed since ``since``), noisiest first."""
    query = (
        select(Ticket.rule_id, Ticket.closure_code, func.count())
        .where(Ticket.closure_code.is_not(None), Ticket.rule_id.is_not(None))
        .group_by(Ticket.rule_id, Ticket.closure_code)
    )
    if since is not None:
        query = query.where(or_(Ticket.resolved_at >= since, Ticket.closed_at >= since))
    counts: dict[str, dict[str, int]] = {}
    for rule, code, count in session.execute(query).all():
        counts.setdefault(str(rule), {})[str(code)] = int(count)
    rows = [RuleClosures(rule, sum(codes.values()), codes) for rule, codes in counts.items()]
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


def dispatcher_queue(session: Session) -> list[QueuedTicket]:
    """Open tickets with no technician (among them escalated delay cases), and assigned ones
    nobody acknowledged after the escalation chain ran out; the most urgent first."""
    unowned = Ticket.technician_id.is_(None)
    unanswered = (
        (Ticket.status == "assigned") & Ticket.ack_due_at.is_(None) & (Ticket.escalation_step > 0)
    )
    tickets = session.scalars(
        select(Ticket)
        .where(Ticket.open_fingerprint.is_not(None), or_(unowned, unanswered))
        .order_by(Ticket.priority, Ticket.sla_due_at, Ticket.id)
    ).all()
    return [
        QueuedTicket(
            t.id,
            t.status,
            t.priority,
            t.title,
            _why(t),
            t.sla_due_at,
            t.opened_at,
        )
        for t in tickets
    ]


def _why(ticket: Ticket) -> str:
    if ticket.status == "escalated":
        return "needs a person"
    return "no eligible technician" if ticket.technician_id is None else "nobody acknowledged"
