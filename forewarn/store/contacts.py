"""The notifier's own tables: what customers and providers told us, and who must answer.

* ``provider_events``: every delivery receipt (Twilio status callback, SendGrid event) as
  received. ``(provider, event_id)`` is unique, so a redelivered callback changes nothing.
* ``inbound_messages``: every SMS that reached us, with what we did about it and the
  reply we gave. ``message_sid`` is unique: Twilio retries a webhook it saw fail.
* ``follow_ups``: work for a person: a customer asked for a human, wrote something we do
  not understand, or a proactive notice went without an update for too long. Each has
  its own response due time; ``source_key`` is unique so a check that runs every minute
  opens each task once.
* ``csat_responses``: satisfaction scores (1-5) given after a survey, one per survey.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from forewarn.ports import Person
from forewarn.store.models import Base, Customer


class ProviderEvent(Base):
    __tablename__ = "provider_events"
    __table_args__ = (
        UniqueConstraint("provider", "event_id", name="uq_provider_events_provider_event_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(200))
    """SendGrid's ``sg_event_id``; for Twilio, ``MessageSid:MessageStatus``."""
    notification_id: Mapped[int | None] = mapped_column(Integer, index=True)
    status: Mapped[str] = mapped_column(String(32))
    """The provider's own word (``delivered``, ``bounce``, ``undelivered``, ``open``...)."""
    error_code: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(Text)
    """What forewarn did with it: ``delivered``, ``ignored: older than sent``, ..."""
    received_at: Mapped[datetime] = mapped_column(index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The event's fields, recipient addresses masked."""


class InboundMessage(Base):
    __tablename__ = "inbound_messages"
    __table_args__ = (
        # Texts the retention job has still to erase (migration 0020).
        Index(
            "ix_inbound_messages_unscrubbed",
            "received_at",
            sqlite_where=text("body <> ''"),
            postgresql_where=text("body <> ''"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32))
    message_sid: Mapped[str] = mapped_column(String(64), unique=True)
    sender_role: Mapped[str] = mapped_column(String(16))
    """``customer``, ``technician`` or ``unknown``."""
    sender_id: Mapped[str | None] = mapped_column(String(128), index=True)
    sender_masked: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    intent: Mapped[str] = mapped_column(String(16))
    """stop, start, help, human, csat, command, text, fixed, not_fixed or ignored (and
    the steps added since: see :mod:`forewarn.notifier.inbound`)."""
    reply: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime]
    ticket_id: Mapped[int | None] = mapped_column(Integer, index=True)
    """The ticket or order case the message was about (open ones only; migration 0140)."""
    conversation_id: Mapped[int | None] = mapped_column(Integer)
    """The conversation it joined, if any."""


class FollowUp(Base):
    __tablename__ = "follow_ups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    """``human`` (asked for a person), ``free_text`` (a reply we could not read) or
    ``orphan_notice`` (a proactive notice with no update in time: an alert for ops)."""
    customer_id: Mapped[str | None] = mapped_column(String(128), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    notification_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    """open or done."""
    opened_at: Mapped[datetime]
    due_at: Mapped[datetime]
    """When a person must have answered (the task's response SLA)."""
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(128))
    closing_note: Mapped[str | None] = mapped_column(Text)
    """What the person who closed it did or said (console form; migration 0051)."""


class CsatResponse(Base):
    __tablename__ = "csat_responses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    survey_notification_id: Mapped[int] = mapped_column(Integer, unique=True)
    """The survey answered; one score per survey (a second reply is a free-text reply)."""
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    score: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]


class SqlContactStore:
    """Customers as ticketing reads them (the interface is in :mod:`forewarn.ports`)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def customer(self, customer_id: str) -> Person | None:
        row = self._session.get(Customer, customer_id)
        if row is None:
            return None
        return Person(
            id=row.id,
            name=row.name,
            locale=row.locale,
            timezone=row.timezone,
            phone=row.phone,
            email=row.email,
            channels=tuple(row.channels or ("sms", "email")),
            opted_out=tuple(row.opted_out or ()),
            quiet_hours=row.quiet_hours,
        )

    def save_customer(self, person: Person) -> None:
        row = self._session.get(Customer, person.id)
        if row is None:
            row = Customer(id=person.id)
            self._session.add(row)
        row.name = person.name
        row.locale = person.locale
        row.timezone = person.timezone
        row.phone = person.phone
        row.email = person.email
        if row.channels is None or tuple(row.channels or ("sms", "email")) != person.channels:
            row.channels = list(person.channels)  # an empty list reads as the default
        row.opted_out = list(person.opted_out)
        row.quiet_hours = person.quiet_hours
        self._session.flush()
