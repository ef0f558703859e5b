"""No orphan notices, and work for people.

Every proactive notice to a customer (a fault detected, an order running late) promises
that more will follow. :func:`notify_customer_update` queues that "more" (an update, a new
ETA, the all-clear, an apology for a false alarm, the survey) with the context of the
notice it follows. :func:`overdue_notices` is the scheduled check: a notice left without
any of them for longer than ``follow_up_within`` opens an ``orphan_notice`` task, which is
an alert for ops; each task has a due time. A customer who asks for a person (HUMAN, free
text) gets a conversation with an owner or a queue instead
(:mod:`forewarn.notifier.conversations`); ``human`` and ``free_text`` tasks are only
those opened before conversations existed.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, sessionmaker

from forewarn.notifier.events import FOLLOW_UPS, MERGED, PROACTIVE, SURVEY
from forewarn.notifier.outbox import customer_recipient, notify
from forewarn.store.contacts import FollowUp
from forewarn.store.models import Customer, Notification

log = logging.getLogger(__name__)

ANSWERED_BY = FOLLOW_UPS
ORPHAN_RESPONSE = timedelta(hours=1)
"""How soon ops must act on an orphaned notice (send an update or close the loop)."""
_NOT_SENT = ("failed", "cancelled", "superseded")


def open_task(
    session: Session,
    *,
    source_key: str,
    kind: str,
    customer_id: str | None,
    ticket_id: int | None,
    detail: str,
    now: datetime,
    due: datetime,
    notification_id: int | None = None,
) -> FollowUp:
    """Open a task for a person (once per ``source_key``) and return it."""
    existing = session.scalar(select(FollowUp).where(FollowUp.source_key == source_key))
    if existing is not None:
        return existing
    task = FollowUp(
        source_key=source_key,
        kind=kind,
        customer_id=customer_id,
        ticket_id=ticket_id,
        notification_id=notification_id,
        detail=detail,
        status="open",
        opened_at=now,
        due_at=due,
    )
    session.add(task)
    session.flush()
    log.warning("follow-up %s opened (%s), due %s", task.id, kind, due.isoformat())
    return task


def close_task(session: Session, task_id: int, by: str, now: datetime) -> bool:
    task = session.get(FollowUp, task_id)
    if task is None or task.status != "open":
        return False
    task.status, task.closed_at, task.closed_by = "done", now, by
    return True


def notify_customer_update(
    session: Session,
    *,
    ticket_id: int,
    event: str,
    key: str,
    now: datetime,
    update: dict[str, Any] | None = None,
    not_before: datetime | None = None,
) -> list[Notification]:
    """Queue a follow-up ``event`` to the customer told about ``ticket_id``.

    A no-op when the customer was never told (no proactive notice for the ticket): an
    all-clear for a problem they never heard of would only worry them. The context is the
    notice's own (device, site, technician, evidence) plus ``update`` (e.g. ``{"eta":
    "2026-11-26T14:00:00+00:00"}``). ``key`` makes it idempotent (a ticket event id).
    ``not_before`` delays it (a survey an hour after the all-clear).
    """
    if event not in FOLLOW_UPS and event != SURVEY:
        raise ValueError(f"{event!r} is not a follow-up event")
    notice = session.scalar(
        select(Notification)
        .where(
            Notification.ticket_id == ticket_id,
            Notification.recipient_role == "customer",
            Notification.event.in_(PROACTIVE),
            Notification.fallback_of.is_(None),
        )
        .order_by(Notification.id)
        .limit(1)
    )
    if notice is None:
        return []
    customer = session.get(Customer, notice.recipient_id)
    if customer is None:
        return []
    context = {k: v for k, v in notice.context.items() if k != "recipient"}
    context["update"] = {"eta": None, "note": None, **(update or {})}
    rows = notify(
        session,
        key=key,
        event=event,
        recipient=customer_recipient(customer),
        context=context,
        now=now,
        ticket_id=ticket_id,
        # A follow-up to a critical notice carries the same urgency: "it is fixed" is
        # what someone woken at 3 a.m. is waiting for.
        critical=notice.critical,
    )
    if not_before is not None:
        for row in rows:
            row.next_attempt_at = max(row.next_attempt_at, not_before)
    return rows


def overdue_notices(session: Session, now: datetime, within: timedelta) -> list[FollowUp]:
    """Open an ops task for each proactive notice with no follow-up after ``within``.

    Set-based: one query finds the notices (sent or merged into a sent message, queued
    before the deadline) for whose ticket no follow-up was queued after them.
    """
    later = aliased(Notification)
    answered = exists().where(
        later.ticket_id == Notification.ticket_id,
        later.recipient_role == "customer",
        later.event.in_(ANSWERED_BY),
        later.id > Notification.id,
    )
    tasked = exists().where(
        FollowUp.kind == "orphan_notice", FollowUp.notification_id == Notification.id
    )
    rows = session.execute(
        select(Notification.id, Notification.ticket_id, Notification.recipient_id)
        .where(
            Notification.recipient_role == "customer",
            Notification.event.in_((*PROACTIVE, MERGED)),
            Notification.ticket_id.is_not(None),
            Notification.fallback_of.is_(None),
            Notification.status.not_in(_NOT_SENT),
            Notification.created_at <= now - within,
            and_(~answered, ~tasked),
        )
        .order_by(Notification.id)
    ).all()
    opened = []
    for notification_id, ticket_id, customer_id in rows:
        try:
            with session.begin_nested():
                opened.append(
                    open_task(
                        session,
                        source_key=f"orphan:{notification_id}",
                        kind="orphan_notice",
                        customer_id=customer_id,
                        ticket_id=ticket_id,
                        notification_id=notification_id,
                        detail=(
                            f"notice #{notification_id} about ticket #{ticket_id} has had no "
                            f"update, all-clear or apology for {within}"
                        ),
                        now=now,
                        due=now + ORPHAN_RESPONSE,
                    )
                )
        except IntegrityError:
            continue  # another scheduler run opened it a moment ago
    return opened


def check_overdue(sessions: sessionmaker[Session], now: datetime, within: timedelta) -> int:
    """The scheduled no-orphan check, in its own transaction; returns tasks opened."""
    with sessions.begin() as session:
        opened = overdue_notices(session, now, within)
    for task in opened:
        log.warning(
            "ORPHAN NOTICE: ticket %s: the customer has had no update for %s (follow-up %s)",
            task.ticket_id,
            within,
            task.id,
        )
    return len(opened)


def send_status_update(
    session: Session,
    *,
    ticket_id: int,
    note: str,
    eta: str | None,
    by: str,
    now: datetime,
) -> list[Notification]:
    """Queue an ops-written ``status_update`` to the customer told about ``ticket_id`` and
    close the ticket's open orphan-notice tasks: the update is the follow-up they lacked.

    Returns the rows queued; none when the customer was never told about the ticket (or
    the same note was already queued this minute: a double-clicked form sends once).
    """
    digest = hashlib.sha256(f"{note}\x00{eta or ''}".encode()).hexdigest()[:16]
    key = f"ops-update:{ticket_id}:{now.strftime('%Y%m%dT%H%M')}:{digest}"
    rows = notify_customer_update(
        session,
        ticket_id=ticket_id,
        event="status_update",
        key=key,
        now=now,
        update={"note": note, "eta": eta},
    )
    if rows:
        orphans = session.scalars(
            select(FollowUp).where(
                FollowUp.ticket_id == ticket_id,
                FollowUp.kind == "orphan_notice",
                FollowUp.status == "open",
            )
        )
        for task in orphans:
            close_task(session, task.id, f"{by} (status update)", now)
    return rows
