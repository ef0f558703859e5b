"""What happens to a message that did not get through: retry later, or give up and fall back.

One place decides it, for a provider's synchronous refusal (raised by ``Channel.send``)
and for a failed delivery receipt that arrives later alike:

* a permanent verdict (the channel's own table says retrying cannot help) ends the row
  at once and queues the message on the recipient's next channel;
* a transient one puts the row back in the queue after :func:`backoff`, for as long as
  ``notifications.give_up_after`` allows, counted from the row's first attempt. Outages
  delay messages; only that time budget, never a count of attempts, turns a transient
  failure into a final one.

``tenacity`` was considered for the delay: its wait functions read a ``RetryCallState``
of an in-process retry loop, while here each attempt is a separate claim of a stored row
(possibly by another process), so the ten lines below are simpler than adapting it.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from forewarn.config.durations import format_duration
from forewarn.config.schema import NotificationSettings
from forewarn.notifier.outbox import (
    Recipient,
    customer_recipient,
    enqueue,
    technician_recipient,
)
from forewarn.notifier.policy import deliver_after
from forewarn.store.models import Customer, DeliveryAttempt, Notification, Technician

log = logging.getLogger(__name__)


def backoff(
    attempt: int,
    *,
    base: timedelta,
    cap: timedelta,
    rng: random.Random,
    retry_after: float | None = None,
) -> timedelta:
    """The wait before attempt ``attempt + 1``: capped exponential backoff, full jitter.

    The ceiling is ``base * 2 ** (attempt - 1)``, at most ``cap``; the wait is drawn
    uniformly between 0 and the ceiling, so a burst of failures (a provider outage) does
    not come back as a burst. A provider's ``retry_after`` (seconds) is a floor.
    """
    exponent = min(max(attempt - 1, 0), 60)  # 2**60 seconds is past any cap already
    ceiling = min(cap.total_seconds(), base.total_seconds() * 2.0**exponent)
    delay = rng.uniform(0.0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return timedelta(seconds=delay)


@dataclass(frozen=True)
class Failure:
    """Why one attempt did not reach the recipient, with the channel's verdict."""

    reason: str
    permanent: bool
    retry_after: float | None = None
    code: str | None = None


@dataclass(frozen=True)
class Settled:
    """What :func:`settle` did: ``outcome`` is ``transient`` or ``permanent``."""

    outcome: str
    reason: str
    retry_at: datetime | None = None


def settle(
    session: Session,
    row: Notification,
    failure: Failure,
    *,
    provider: str,
    now: datetime,
    settings: NotificationSettings,
    rng: random.Random,
    final_status: str = "failed",
) -> Settled:
    """Record ``failure`` on ``row`` and decide: back in the queue, or final and fall back.

    ``final_status`` is what a permanent failure leaves on the row: ``failed`` for a
    refusal at send time, the receipt's ``undelivered``/``bounced`` for a later one.
    """
    first = session.scalar(
        select(func.min(DeliveryAttempt.at)).where(DeliveryAttempt.notification_id == row.id)
    )
    elapsed = now - first if first is not None else timedelta(0)
    permanent = failure.permanent
    reason = failure.reason
    if not permanent and elapsed >= settings.give_up_after:
        permanent = True
        reason = (
            f"gave up after {format_duration(elapsed)} of transient failures "
            f"({row.attempts} attempts, give_up_after {format_duration(settings.give_up_after)})"
            f": {failure.reason}"
        )
    row.last_error = reason
    row.lease_until = None
    retry_at: datetime | None = None
    if permanent:
        row.status = final_status
    else:
        wait = backoff(
            row.attempts,
            base=settings.retry_base,
            cap=settings.retry_cap,
            rng=rng,
            retry_after=failure.retry_after,
        )
        retry_at = not_in_quiet_hours(session, row, now + wait)
        row.status = "queued"
        row.next_attempt_at = retry_at
    outcome = "permanent" if permanent else "transient"
    session.add(
        DeliveryAttempt(
            notification_id=row.id, at=now, provider=provider, outcome=outcome, error=reason
        )
    )
    if permanent:
        fall_back(session, row, now)
    return Settled(outcome, reason, retry_at)


def not_in_quiet_hours(session: Session, row: Notification, when: datetime) -> datetime:
    """A retry of a non-critical message must not land in the customer's night."""
    if row.critical or row.recipient_role != "customer":
        return when
    customer = session.get(Customer, row.recipient_id)
    if customer is None:
        return when
    recipient = customer_recipient(customer)
    return deliver_after(when, recipient.timezone, recipient.quiet_hours, critical=False)


def fall_back(session: Session, original: Notification, now: datetime) -> Notification | None:
    """After a permanent failure, queue the same message on the next preferred channel."""
    recipient = recipient_of(session, original)
    if recipient is None:
        return None
    tried = {original.channel}
    chain = original
    while chain.fallback_of is not None:
        previous = session.get(Notification, chain.fallback_of)
        if previous is None:
            break
        tried.add(previous.channel)
        chain = previous
    remaining = [c for c in recipient.usable() if c not in tried]
    if not remaining or recipient.every_channel:
        return None  # every channel already carries (or carried) this message
    channel = remaining[0]
    row = enqueue(
        session,
        dedupe_key=f"{original.dedupe_key}:fallback:{channel}",
        event=original.event,
        recipient=recipient,
        channel=channel,
        context={k: v for k, v in original.context.items() if k != "recipient"},
        now=now,
        not_before=deliver_after(
            now, recipient.timezone, recipient.quiet_hours, critical=original.critical
        ),
        ticket_id=original.ticket_id,
        critical=original.critical,
        fallback_of=original.id,
    )
    if row is not None:
        log.info("notification %s falls back to %s as %s", original.id, channel, row.id)
    return row


def recipient_of(session: Session, row: Notification) -> Recipient | None:
    if row.recipient_role == "customer":
        customer = session.get(Customer, row.recipient_id)
        return customer_recipient(customer) if customer else None
    if row.recipient_role == "technician":
        technician = session.get(Technician, row.recipient_id)
        return technician_recipient(technician) if technician else None
    return None
