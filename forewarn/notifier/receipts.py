"""Delivery receipts: what the providers later say became of a message we handed them.

Statuses only move forward (``queued -> sending -> sent -> delivered | undelivered |
bounced``): providers retry callbacks and do not order them, so a late "sent" must not
undo a "delivered". Every event is stored once, keyed by the provider's own event id; a
redelivered callback finds its key taken and changes nothing.

A receipt may overtake the sender's own commit (the callback arrives before the row says
"sent"); it is applied all the same, and the sender keeps it (see ``Sender._sent``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forewarn.notifier.preferences import opt_out
from forewarn.store.contacts import ProviderEvent
from forewarn.store.models import Customer, Notification

log = logging.getLogger(__name__)

RANK = {
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "bounced": 3,
}
"""Order of notification statuses; a receipt never lowers it. ``failed``, ``merged`` and
``cancelled`` never left through the provider and take no receipts."""

TWILIO_STATUS = {
    "accepted": "queued",
    "queued": "queued",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "undelivered",
}
SENDGRID_STATUS = {
    "processed": "sent",
    "delivered": "delivered",
    "bounce": "bounced",
    "dropped": "bounced",
}
"""SendGrid ``deferred`` is the receiving server asking to try later (SendGrid does), and
``open``/``click`` say nothing about delivery we do not know: stored, status unchanged."""

SENDGRID_OPT_OUTS = frozenset({"unsubscribe", "group_unsubscribe", "spamreport"})


@dataclass(frozen=True)
class ProviderReport:
    """One receipt, as the webhook parsed it."""

    provider: str
    event_id: str
    status: str
    """The provider's word for it."""
    new_status: str | None
    """Our status it maps to, or None if it changes nothing."""
    notification_id: int | None
    provider_message_id: str | None = None
    error_code: str | None = None
    opt_out: bool = False
    """The recipient unsubscribed or marked us as spam."""
    payload: dict[str, Any] | None = None


def apply_receipt(session: Session, report: ProviderReport, now: datetime) -> str:
    """Record ``report`` and move its notification forward; returns what was done.

    Idempotent: a second report with the same ``(provider, event_id)`` returns
    ``"duplicate"`` and changes nothing.
    """
    known = session.scalar(
        select(ProviderEvent.id).where(
            ProviderEvent.provider == report.provider, ProviderEvent.event_id == report.event_id
        )
    )
    if known is not None:
        return "duplicate"
    row = _notification(session, report)
    outcome = _advance(session, row, report, now)
    try:
        with session.begin_nested():
            session.add(
                ProviderEvent(
                    provider=report.provider,
                    event_id=report.event_id,
                    notification_id=row.id if row is not None else None,
                    status=report.status,
                    error_code=report.error_code,
                    outcome=outcome,
                    received_at=now,
                    payload=report.payload or {},
                )
            )
    except IntegrityError:
        # The same event, delivered twice at once, lost the race for its key: the winner
        # applied it. Undo our copy of the change too.
        raise DuplicateEvent(report.event_id) from None
    return outcome


class DuplicateEvent(Exception):
    """The event was recorded by a concurrent request; roll back and answer 200."""


def _notification(session: Session, report: ProviderReport) -> Notification | None:
    if report.notification_id is not None:
        row = session.get(Notification, report.notification_id)
        if row is not None:
            return row
    if report.provider_message_id:
        return session.scalar(
            select(Notification).where(
                Notification.provider_message_id == report.provider_message_id
            )
        )
    return None


def _advance(
    session: Session, row: Notification | None, report: ProviderReport, now: datetime
) -> str:
    if row is None:
        return "ignored: no such notification"
    outcomes = []
    if report.opt_out and row.recipient_role == "customer":
        customer = session.get(Customer, row.recipient_id)
        if customer is not None:
            opt_out(session, customer, [row.channel], f"{report.provider} {report.status}")
            outcomes.append(f"opted out of {row.channel}")
    if report.error_code == "21610" and row.recipient_role == "customer":
        customer = session.get(Customer, row.recipient_id)
        if customer is not None:
            opt_out(session, customer, ["sms"], "Twilio 21610")
            outcomes.append("opted out of sms (21610)")
    new = report.new_status
    if new is None:
        return "; ".join(outcomes) or "recorded"
    current = RANK.get(row.status)
    if current is None:
        return f"ignored: notification is {row.status}"
    if RANK[new] <= current:
        return f"ignored: {new} is not after {row.status}"
    row.status = new
    if report.provider_message_id and not row.provider_message_id:
        row.provider_message_id = report.provider_message_id
    if new == "delivered":
        row.delivered_at = now
    if new in ("undelivered", "bounced"):
        row.last_error = f"{report.provider}: {report.status}" + (
            f" (code {report.error_code})" if report.error_code else ""
        )
    log.info("notification %s %s (%s)", row.id, new, report.provider)
    return "; ".join([new, *outcomes])
