"""The outbox in SQL (SQLite and PostgreSQL): notifications queued with their cause.

The interface is documented in :mod:`forewarn.ports`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from forewarn.notifier.held import follow_ticket
from forewarn.ports import NotificationRecord
from forewarn.store.models import Notification, Ticket


def notification_record(row: Notification) -> NotificationRecord:
    return NotificationRecord(
        dedupe_key=row.dedupe_key,
        event=row.event,
        recipient_role=row.recipient_role,
        recipient_id=row.recipient_id,
        channel=row.channel,
        address=row.address,
        locale=row.locale,
        context=dict(row.context or {}),
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        ticket_id=row.ticket_id,
        critical=row.critical,
        fallback_of=row.fallback_of,
        status=row.status,
        id=row.id,
    )


class SqlOutbox:
    def __init__(self, session: Session) -> None:
        self._session = session

    def enqueue(self, notification: NotificationRecord) -> NotificationRecord | None:
        taken = self._session.scalar(
            select(Notification.id).where(Notification.dedupe_key == notification.dedupe_key)
        )
        if taken is not None:
            return None
        row = Notification(
            dedupe_key=notification.dedupe_key,
            ticket_id=notification.ticket_id,
            event=notification.event,
            recipient_role=notification.recipient_role,
            recipient_id=notification.recipient_id,
            channel=notification.channel,
            address=notification.address,
            locale=notification.locale,
            context=dict(notification.context),
            critical=notification.critical,
            status="queued",
            attempts=0,
            next_attempt_at=notification.next_attempt_at,
            created_at=notification.created_at,
            fallback_of=notification.fallback_of,
        )
        self._session.add(row)
        self._session.flush()
        return notification_record(row)

    def queued(self, ticket_id: int) -> list[NotificationRecord]:
        rows = self._session.scalars(
            select(Notification)
            .where(Notification.ticket_id == ticket_id)
            .order_by(Notification.id)
        )
        return [notification_record(r) for r in rows]

    def follow(self, ticket_id: int, now: datetime) -> None:
        ticket = self._session.get(Ticket, ticket_id)
        if ticket is not None:
            follow_ticket(self._session, ticket, now)
