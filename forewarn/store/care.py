"""The customer-care tables: self-service offers, conversations, maintenance notices.

* ``self_service_offers``: a fault with customer-safe steps was offered to the customer
  first; one per ticket. ``status`` goes ``offered`` -> ``fixed`` (the customer said so;
  the telemetry has until ``settle_by`` to agree) -> ``resolved`` (closed without a
  visit) or ``kept`` (the visit stays; ``outcome`` says why).
* ``conversations`` and ``conversation_messages``: a customer who asked for a person (or
  wrote something no keyword reads) and everything said both ways until ops close it.
  ``due_at`` is when a person must have answered (NULL while the customer has the last
  word answered); past it the conversation escalates once (``escalated_at``).
* ``maintenance_notices``: what the customers of one planned-maintenance silence were
  told (the window announced, extensions, the all-clear), so each is told once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from forewarn.store.models import Base


class SelfServiceOffer(Base):
    __tablename__ = "self_service_offers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), unique=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    rule_id: Mapped[str] = mapped_column(String(128))
    code: Mapped[str | None] = mapped_column(String(64))
    steps: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The steps as offered, per locale (a later config change does not rewrite them)."""
    status: Mapped[str] = mapped_column(String(16), index=True)
    """``offered``, ``fixed`` (waiting for the telemetry), ``resolved``, ``kept`` or
    ``void`` (the ticket ended another way before the customer answered)."""
    outcome: Mapped[str | None] = mapped_column(String(32))
    """``fixed``, ``still_breaching``, ``not_fixed``, ``no_answer`` or ``under_way``."""
    offered_at: Mapped[datetime]
    answer_by: Mapped[datetime]
    """Silence until then keeps the visit."""
    answered_at: Mapped[datetime | None]
    answered_by: Mapped[str | None] = mapped_column(String(16))
    """How the answer came: ``sms`` or ``email`` (the signed link)."""
    settle_within_seconds: Mapped[float] = mapped_column(Float)
    """How long the telemetry has after FIXED (the rule's ``settle_within`` when offered)."""
    settle_by: Mapped[datetime | None]
    """After FIXED: the telemetry must be back to normal by then."""
    decided_at: Mapped[datetime | None]


class Conversation(Base):
    __tablename__ = "conversations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    """The customer's open ticket or order case when the conversation opened; never a
    closed one."""
    queue: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(128))
    """The person who took it; None: anyone on the queue."""
    reason: Mapped[str] = mapped_column(String(16))
    """``human`` (asked for a person), ``routed`` (a keyword chose the queue), ``text``."""
    status: Mapped[str] = mapped_column(String(16), index=True)
    """``open`` or ``closed``."""
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    last_inbound_at: Mapped[datetime | None]
    last_channel: Mapped[str | None] = mapped_column(String(16))
    """The channel the customer last wrote on: replies go back on it."""
    escalated_at: Mapped[datetime | None]
    escalated_to: Mapped[str | None] = mapped_column(String(128))
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(128))


class ConversationMessage(Base):
    __tablename__ = "conversation_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    direction: Mapped[str] = mapped_column(String(8))
    """``in`` (the customer) or ``out`` (ops, through the outbox)."""
    author: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]
    inbound_message_id: Mapped[int | None] = mapped_column(Integer)
    notification_id: Mapped[int | None] = mapped_column(Integer)


class MaintenanceNotice(Base):
    __tablename__ = "maintenance_notices"
    silence_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    announced_at: Mapped[datetime | None]
    announced_starts: Mapped[datetime | None]
    announced_ends: Mapped[datetime | None]
    """The end the customers were last told; a later end is an extension."""
    extensions: Mapped[int] = mapped_column(Integer, default=0)
    over_at: Mapped[datetime | None]
    customers: Mapped[int] = mapped_column(Integer, default=0)
    """How many customers the window concerns (the last count)."""
