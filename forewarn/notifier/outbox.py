"""Writing notifications into the outbox, in the caller's transaction.

A ticket event and the messages it causes commit together: if the event rolls back, no
message leaves; if it commits, the sender will deliver it or record why it could not.
``dedupe_key`` is unique, so retrying an event never queues a message twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from forewarn.config.schema import HoursWindow
from forewarn.notifier.policy import deliver_after
from forewarn.ports import NotificationRecord, Outbox, Person
from forewarn.store.models import Customer, Notification, Technician
from forewarn.store.outbox import SqlOutbox

Role = Literal["customer", "technician", "dispatcher"]


@dataclass(frozen=True)
class Recipient:
    role: Role
    id: str
    name: str
    locale: str
    timezone: str
    addresses: dict[str, str]
    """channel -> address, only for channels the recipient can be reached on."""
    channels: tuple[str, ...]
    """Channels in order of preference."""
    quiet_hours: HoursWindow | None = None
    every_channel: bool = False
    """Send on every channel (technicians: SMS to alert, email for the details) rather
    than the first one, with the others as fallbacks."""

    def usable(self) -> list[str]:
        return [c for c in self.channels if c in self.addresses]


def customer_recipient(customer: Customer | Person) -> Recipient:
    addresses = {"sms": customer.phone, "email": customer.email}
    opted_out = set(customer.opted_out or ())
    return Recipient(
        role="customer",
        id=customer.id,
        name=customer.name,
        locale=customer.locale,
        timezone=customer.timezone,
        addresses={k: v for k, v in addresses.items() if v and k not in opted_out},
        channels=tuple(customer.channels or ("sms", "email")),
        quiet_hours=HoursWindow.parse(customer.quiet_hours) if customer.quiet_hours else None,
    )


def technician_recipient(technician: Technician) -> Recipient:
    addresses = {"sms": technician.phone, "email": technician.email}
    return Recipient(
        role="technician",
        id=technician.id,
        name=technician.name,
        locale=technician.locale,
        timezone=technician.timezone,
        addresses={k: v for k, v in addresses.items() if v},
        channels=tuple(technician.channels or ("sms", "email")),
        every_channel=True,
    )


def notify(
    session: Session,
    *,
    key: str,
    event: str,
    recipient: Recipient,
    context: dict[str, Any],
    now: datetime,
    ticket_id: int | None = None,
    critical: bool = False,
    earliest: datetime | None = None,
) -> list[Notification]:
    """:func:`post` into the SQL outbox of ``session``; returns the rows queued (callers
    may still adjust them in the same transaction)."""
    posted = post(
        SqlOutbox(session),
        key=key,
        event=event,
        recipient=recipient,
        context=context,
        now=now,
        ticket_id=ticket_id,
        critical=critical,
        earliest=earliest,
    )
    return [row for n in posted if (row := session.get(Notification, n.id)) is not None]


def post(
    outbox: Outbox,
    *,
    key: str,
    event: str,
    recipient: Recipient,
    context: dict[str, Any],
    now: datetime,
    ticket_id: int | None = None,
    critical: bool = False,
    earliest: datetime | None = None,
) -> list[NotificationRecord]:
    """Queue ``event`` for ``recipient``; returns what was queued (none if already queued).

    ``key`` identifies the cause (e.g. the ticket event); with the recipient and channel it
    forms the row's dedupe key. ``earliest`` delays the message (a survey after the
    all-clear); quiet hours apply from then on.
    """
    queued = []
    for planned in messages(
        key=key,
        event=event,
        recipient=recipient,
        context=context,
        now=now,
        ticket_id=ticket_id,
        critical=critical,
        earliest=earliest,
    ):
        posted = outbox.enqueue(planned)
        if posted is not None:
            queued.append(posted)
    return queued


def messages(
    *,
    key: str,
    event: str,
    recipient: Recipient,
    context: dict[str, Any],
    now: datetime,
    ticket_id: int | None = None,
    critical: bool = False,
    earliest: datetime | None = None,
) -> list[NotificationRecord]:
    """The rows :func:`post` queues, without queueing them (pure): a storm plans every
    message of a sweep and inserts them in one statement."""
    usable = recipient.usable()
    chosen = usable if recipient.every_channel else usable[:1]
    not_before = deliver_after(
        earliest or now, recipient.timezone, recipient.quiet_hours, critical=critical
    )
    return [
        message(
            dedupe_key=f"{key}:{recipient.role}:{recipient.id}:{channel}",
            event=event,
            recipient=recipient,
            channel=channel,
            context=context,
            now=now,
            not_before=not_before,
            ticket_id=ticket_id,
            critical=critical,
        )
        for channel in chosen
    ]


def message(
    *,
    dedupe_key: str,
    event: str,
    recipient: Recipient,
    channel: str,
    context: dict[str, Any],
    now: datetime,
    not_before: datetime,
    ticket_id: int | None,
    critical: bool,
    fallback_of: int | None = None,
) -> NotificationRecord:
    """The outbox row for ``recipient`` on ``channel`` (the context gains who it is for)."""
    return NotificationRecord(
        dedupe_key=dedupe_key,
        ticket_id=ticket_id,
        event=event,
        recipient_role=recipient.role,
        recipient_id=recipient.id,
        channel=channel,
        address=recipient.addresses[channel],
        locale=recipient.locale,
        context={**context, "recipient": {"name": recipient.name, "timezone": recipient.timezone}},
        critical=critical,
        next_attempt_at=not_before,
        created_at=now,
        fallback_of=fallback_of,
    )


def enqueue(
    session: Session,
    *,
    dedupe_key: str,
    event: str,
    recipient: Recipient,
    channel: str,
    context: dict[str, Any],
    now: datetime,
    not_before: datetime,
    ticket_id: int | None,
    critical: bool,
    fallback_of: int | None = None,
) -> Notification | None:
    """One :func:`message` into the SQL outbox of ``session``; None if already queued."""
    posted = SqlOutbox(session).enqueue(
        message(
            dedupe_key=dedupe_key,
            event=event,
            recipient=recipient,
            channel=channel,
            context=context,
            now=now,
            not_before=not_before,
            ticket_id=ticket_id,
            critical=critical,
            fallback_of=fallback_of,
        )
    )
    return None if posted is None else session.get(Notification, posted.id)
