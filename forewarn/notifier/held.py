"""Held notices follow their ticket: a held message is a promise about the present.

A customer notice may wait (quiet hours, the merge window, the daily contact budget, a
provider outage). While it waits, its ticket moves on, and the notice is re-decided from
the ticket as it is now, not as it was when the notice was written:

* **superseded**: the ticket was resolved, closed or cancelled before the notice went out;
  a fault notice, "technician assigned" or a status update is no longer true, so it is
  dropped (status ``superseded``, the reason on the row) and the customer gets only the
  message that is still true (the all-clear). Likewise a waiting all-clear or survey is
  dropped when the ticket is reopened;
* **raised**: the ticket became critical; the notice becomes critical too and goes now
  (critical messages bypass quiet hours, merging and the budget);
* **ordered**: no follow-up ("technician assigned", the all-clear) leaves while the
  ticket's fault notice to the same customer is still waiting.

:func:`decide` is the pure rule. :func:`follow_ticket` applies it to the waiting rows
when a ticket event is written (so a raised notice goes at once and a superseded one never
shows as queued); the sender applies it again at claim time (:func:`recheck`), which
covers rows claimed while the event was being written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from forewarn.notifier.events import MERGED
from forewarn.store.models import Notification, Ticket
from forewarn.ticketing import lifecycle

log = logging.getLogger(__name__)

FIRST = frozenset({"fault_notice", "delay_notice", "self_service_offer"})
"""The notice that opens the conversation about a ticket."""
STALE_WHEN_DONE = frozenset(
    {
        *FIRST,
        "technician_assigned",
        "status_update",
        "visit_proposal",
        "visit_confirmed",
        "visit_reminder",
        "parts_ordered",
    }
)
"""Notices that say the ticket is still being worked: untrue once it is done."""
STALE_WHEN_WORKING = frozenset({"ticket_resolved", "satisfaction_survey"})
"""Notices that say the ticket is done: untrue once it is reopened."""
DONE = frozenset(lifecycle.DONE)
WORKING = frozenset(lifecycle.WORKING)
"""The ticket lifecycle's own sets (``ticketing/lifecycle.py`` is pure, no I/O), so a
status added there is judged here too."""
UNVISITED = frozenset(lifecycle.SYSTEM_CLOSURE_CODES)
"""Closures with no visit: their all-clear only makes sense to a customer who was told of
the fault. A fault notice held overnight and dropped when the fault cleared at 04:00 must
not be followed at 07:00 by "your inverter is working normally again" about a problem the
customer never heard of. After a visit the all-clear stays: someone came to their home."""
WAITING = ("queued", "sending")
ORDER_WAIT = timedelta(seconds=5)
"""How long a follow-up waits behind a fault notice that is being sent right now."""

Verdict = Literal["keep", "supersede", "raise"]


def decide(event: str, critical: bool, ticket_status: str, ticket_severity: str) -> Verdict:
    """What a not-yet-sent customer notice becomes, given its ticket as it is now."""
    if ticket_status in DONE and event in STALE_WHEN_DONE:
        return "supersede"
    if ticket_status in WORKING and event in STALE_WHEN_WORKING:
        return "supersede"
    if ticket_severity == "critical" and not critical:
        return "raise"
    return "keep"


@dataclass(frozen=True)
class Recheck:
    """What the sender must do with a claimed row: ``send`` (possibly ``critical`` now),
    ``superseded`` (dropped), or ``wait`` until ``until`` (behind the fault notice)."""

    action: Literal["send", "superseded", "wait"]
    critical: bool = False
    until: datetime | None = None


def supersede(row: Notification, ticket: Ticket) -> None:
    row.status = "superseded"
    row.lease_until = None
    now_is = "reopened" if ticket.status in WORKING else ticket.status.replace("_", " ")
    row.last_error = f"superseded: ticket {ticket.id} was {now_is} before this notice went out"
    log.info("notification %s superseded: ticket %s is %s", row.id, ticket.id, ticket.status)


def follow_ticket(session: Session, ticket: Ticket, now: datetime) -> None:
    """Re-decide the customer notices of ``ticket`` still waiting in the queue."""
    rows = session.scalars(
        select(Notification).where(
            Notification.ticket_id == ticket.id,
            Notification.recipient_role == "customer",
            Notification.status == "queued",
        )
    ).all()
    for row in rows:
        verdict = decide(row.event, row.critical, ticket.status, ticket.severity)
        if verdict == "supersede":
            supersede(row, ticket)
        elif verdict == "raise":
            row.critical = True
            row.next_attempt_at = min(row.next_attempt_at, now)
            row.last_error = None
            log.info("notification %s raised to critical with ticket %s", row.id, ticket.id)


def recheck(session: Session, row: Notification, now: datetime) -> Recheck:
    """The claim-time check of a customer row (the sender owns ``row``)."""
    if row.ticket_id is None:
        return Recheck("send", critical=row.critical)
    ticket = session.get(Ticket, row.ticket_id)
    if ticket is None:
        return Recheck("send", critical=row.critical)
    verdict = decide(row.event, row.critical, ticket.status, ticket.severity)
    if verdict == "supersede":
        supersede(row, ticket)
        return Recheck("superseded")
    critical = row.critical or verdict == "raise"
    if critical and not row.critical:
        row.critical = True
    if row.event not in FIRST:
        until = _fault_notice_pending(session, row, now)
        if until is not None:
            return Recheck("wait", critical=critical, until=until)
        if (
            row.event == "ticket_resolved"
            and ticket.closure_code in UNVISITED
            and not _first_notice_sent(session, row)
        ):
            row.status = "superseded"
            row.lease_until = None
            row.last_error = (
                f"superseded: ticket {ticket.id} closed without a visit and the customer "
                "was never told of the fault"
            )
            log.info("notification %s superseded: its fault was never told", row.id)
            return Recheck("superseded")
    return Recheck("send", critical=critical)


def _first_notice_sent(session: Session, row: Notification) -> bool:
    """Whether this ticket's first notice reached ``row``'s recipient: itself, inside the
    digest it was merged into, or as the digest's carrier (which takes the digest's event)."""
    firsts = session.execute(
        select(Notification.sent_at, Notification.merged_into).where(
            Notification.ticket_id == row.ticket_id,
            Notification.recipient_role == row.recipient_role,
            Notification.recipient_id == row.recipient_id,
            Notification.event.in_((*FIRST, MERGED)),
        )
    ).all()
    for sent_at, merged_into in firsts:
        if sent_at is not None:
            return True
        carrier = session.get(Notification, merged_into) if merged_into else None
        if carrier is not None and carrier.sent_at is not None:
            return True
    return False


def _fault_notice_pending(session: Session, row: Notification, now: datetime) -> datetime | None:
    """When to look again if this ticket's first notice to the customer is still waiting
    (itself, or the message it was merged into); None if it went out or was dropped."""
    firsts = session.execute(
        select(Notification.status, Notification.next_attempt_at, Notification.merged_into).where(
            Notification.ticket_id == row.ticket_id,
            Notification.recipient_role == row.recipient_role,
            Notification.recipient_id == row.recipient_id,
            Notification.event.in_(FIRST),
            Notification.id != row.id,
            Notification.status.in_((*WAITING, "merged")),
        )
    ).all()
    waits: list[datetime] = []
    for status, next_attempt_at, merged_into in firsts:
        if status == "merged":
            carrier = session.get(Notification, merged_into) if merged_into else None
            if carrier is None or carrier.status not in WAITING:
                continue
            status, next_attempt_at = carrier.status, carrier.next_attempt_at
        waits.append(next_attempt_at if status == "queued" else now + ORDER_WAIT)
    if not waits:
        return None
    return max(max(waits), now + timedelta(seconds=1))
