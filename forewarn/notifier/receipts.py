"""Delivery receipts: what the providers later say became of a message we handed them.

Statuses only move forward (``queued -> sending -> sent -> delivered | undelivered |
bounced``): providers retry callbacks and do not order them, so a late "sent" must not
undo a "delivered". Every event is stored once, keyed by the provider's own event id; a
redelivered callback finds its key taken and changes nothing.

A receipt may overtake the sender's own commit (the callback arrives before the row says
"sent"); it is applied all the same, and the sender then completes the row (``sent_at``,
provider, message id) without undoing the receipt (see ``Sender._sent``): both orders end
in the same row. A receipt about an earlier attempt of a retried row changes nothing.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forewarn.config.schema import NotificationSettings
from forewarn.notifier.channels import ProviderReport, Unplaced
from forewarn.notifier.preferences import opt_out
from forewarn.notifier.retry import Failure, settle
from forewarn.store.contacts import ProviderEvent
from forewarn.store.models import Customer, DeliveryAttempt, Notification

log = logging.getLogger(__name__)

RANK = {
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "bounced": 3,
}
"""Order of notification statuses; a receipt never lowers it, except that a failed
receipt with a transient verdict puts the row back in the queue for another attempt.
``failed``, ``merged``, ``superseded`` and ``cancelled`` never left through the provider
and take no receipts."""


def apply_receipt(
    session: Session,
    report: ProviderReport,
    now: datetime,
    *,
    settings: NotificationSettings,
    rng: random.Random,
) -> str:
    """Record ``report`` and move its notification forward; returns what was done.

    A failed receipt is judged by the channel's verdict (``report.failure``) exactly like
    a refusal at send time (:func:`forewarn.notifier.retry.settle`): transient -> the row
    goes back in the queue within ``give_up_after``; permanent -> it ends and the message
    is queued on the next channel.

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
    outcome = _advance(session, row, report, now, settings, rng)
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


def record_unplaced(session: Session, event: Unplaced, now: datetime) -> str:
    """Keep an event forewarn cannot place, with the reason, once per event id."""
    known = session.scalar(
        select(ProviderEvent.id).where(
            ProviderEvent.provider == event.provider, ProviderEvent.event_id == event.event_id
        )
    )
    if known is not None:
        return "duplicate"
    session.add(
        ProviderEvent(
            provider=event.provider,
            event_id=event.event_id,
            notification_id=None,
            status="unplaced",
            error_code=None,
            outcome=f"refused: {event.reason}",
            received_at=now,
            payload={"excerpt": event.excerpt},
        )
    )
    session.flush()
    log.warning("kept a %s event forewarn cannot place: %s", event.provider, event.reason)
    return f"refused: {event.reason}"


def _earlier_attempt(session: Session, row: Notification, report: ProviderReport) -> bool:
    """Whether ``report`` is about an earlier attempt of ``row`` (sent, then retried)."""
    message_id = report.provider_message_id
    if message_id is None or message_id == row.provider_message_id:
        return False
    # A message id we have not recorded yet is the attempt in flight: its receipt has
    # overtaken the sender's commit.
    earlier = session.scalar(
        select(DeliveryAttempt.id).where(
            DeliveryAttempt.notification_id == row.id,
            DeliveryAttempt.provider_message_id == message_id,
        )
    )
    return earlier is not None


def _advance(
    session: Session,
    row: Notification | None,
    report: ProviderReport,
    now: datetime,
    settings: NotificationSettings,
    rng: random.Random,
) -> str:
    if row is None:
        return "ignored: no such notification"
    if _earlier_attempt(session, row, report):
        return "ignored: about an earlier attempt"
    if (
        row.status == "queued"
        and row.provider_message_id is not None
        and report.provider_message_id == row.provider_message_id
    ):
        # That message already failed and a retry is queued; a late "sent" or "queued"
        # for it (callbacks come in any order) must not cancel the retry.
        return "ignored: that message failed; a retry is queued"
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
    if row.sent_at is None:
        # The provider has it, whatever our sender recorded (its answer may have been lost
        # in a timeout, or not be committed yet): the row never says delivered but unsent.
        row.sent_at = now
    if report.provider_message_id:
        # Also when the receipt overtook the sender's commit: the row names the message
        # the provider is talking about, whichever order the two writes came in.
        row.provider_message_id = report.provider_message_id
        row.provider = row.provider or report.provider
    if new == "delivered":
        row.delivered_at = now
    if report.failure is not None:
        settled = settle(
            session,
            row,
            Failure(report.failure.reason, report.failure.permanent, code=report.error_code),
            provider=report.provider,
            now=now,
            settings=settings,
            rng=rng,
            final_status=new,
        )
        if settled.outcome == "transient":
            log.info("notification %s will be retried: %s", row.id, settled.reason)
            return "; ".join([f"{new}, retry", *outcomes])
        log.info("notification %s %s: %s", row.id, new, settled.reason)
        return "; ".join([f"{new}, fallback", *outcomes])
    log.info("notification %s %s (%s)", row.id, new, report.provider)
    return "; ".join([new, *outcomes])
