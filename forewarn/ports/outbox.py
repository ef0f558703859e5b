"""Notifications queued in the same transaction as their cause."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class NotificationRecord:
    """One message to one recipient on one channel, as queued in the outbox.

    ``dedupe_key`` is unique: queueing the same cause twice queues one message.
    """

    dedupe_key: str
    event: str
    recipient_role: str
    recipient_id: str
    channel: str
    address: str
    locale: str
    context: Mapping[str, Any]
    created_at: datetime
    next_attempt_at: datetime
    """Not before this (quiet hours, a delayed survey)."""
    ticket_id: int | None = None
    critical: bool = False
    fallback_of: int | None = None
    status: str = "queued"
    id: int = 0


class Outbox(Protocol):
    """Notifications waiting to be sent: written in the same transaction as their cause."""

    def enqueue(self, notification: NotificationRecord) -> NotificationRecord | None:
        """Queue ``notification``; returns it with its id, or None (and queues nothing)
        when its ``dedupe_key`` is already queued."""
        ...

    def queued(self, ticket_id: int) -> list[NotificationRecord]:
        """The notifications of ``ticket_id``, in the order they were queued."""
        ...

    def follow(self, ticket_id: int, now: datetime) -> None:
        """Re-decide the customer notices of ``ticket_id`` still waiting, from the ticket
        as it is now (:func:`forewarn.notifier.held.decide`): superseded, raised to
        critical, or kept."""
        ...
