"""The set-based reads and writes of a ticketing storm (SQLite and PostgreSQL).

:mod:`forewarn.ticketing.storm` opens the tickets of thousands of alerts in one pass;
this module gives it everything it reads in a few statements per kind (chunked ``IN``
lists) and writes tickets, their events and their outbox rows with one multi-row
``INSERT ... RETURNING`` each. Values go in and out as the ORM rows' column values; no
row is loaded through the session's identity map unless the caller asks for ORM rows.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forewarn.ports import NotificationRecord, TicketEventRecord, TicketExists, TicketRecord
from forewarn.store.models import (
    Alert,
    Customer,
    Device,
    Notification,
    Reading,
    Site,
    Technician,
    Ticket,
    TicketEvent,
)

CHUNK = 500
"""Values per ``IN (...)`` list (well under every driver's parameter limit)."""
T = TypeVar("T")


def chunks(values: Collection[T]) -> Iterator[list[T]]:
    ordered = sorted(set(values))  # type: ignore[type-var]
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


def rows_by_id(session: Session, model: type[Any], ids: Collection[str]) -> dict[str, Any]:
    """ORM rows of ``model`` (devices, sites, customers) by id, in one query per chunk."""
    found: dict[str, Any] = {}
    for part in chunks(ids):
        for row in session.scalars(select(model).where(model.id.in_(part))):
            found[row.id] = row
    return found


def devices(session: Session, ids: Collection[str]) -> dict[str, Device]:
    return rows_by_id(session, Device, ids)


def sites(session: Session, ids: Collection[str]) -> dict[str, Site]:
    return rows_by_id(session, Site, ids)


def customers(session: Session, ids: Collection[str]) -> dict[str, Customer]:
    return rows_by_id(session, Customer, ids)


def technicians(session: Session) -> dict[str, Technician]:
    return {t.id: t for t in session.scalars(select(Technician).order_by(Technician.id))}


def holding(session: Session, fingerprints: Collection[str]) -> dict[str, int]:
    """The ticket holding each episode fingerprint now (open fingerprint -> ticket id)."""
    found: dict[str, int] = {}
    for part in chunks(fingerprints):
        rows = session.execute(
            select(Ticket.open_fingerprint, Ticket.id).where(Ticket.open_fingerprint.in_(part))
        )
        found.update({fp: ticket for fp, ticket in rows if fp is not None})
    return found


def latest_tickets(session: Session, fingerprints: Collection[str]) -> dict[str, Ticket]:
    """The most recently opened ticket of each fingerprint (a recurrence may reopen it)."""
    found: dict[str, Ticket] = {}
    for part in chunks(fingerprints):
        newest = (
            select(Ticket.fingerprint, func.max(Ticket.id).label("id"))
            .where(Ticket.fingerprint.in_(part))
            .group_by(Ticket.fingerprint)
            .subquery()
        )
        for row in session.scalars(select(Ticket).join(newest, newest.c.id == Ticket.id)):
            found[row.fingerprint] = row
    return found


def recent_readings(
    session: Session, device_ids: Collection[str], limit: int
) -> dict[str, list[tuple[str, float | None, str | None, datetime]]]:
    """Each device's newest ``limit`` readings, newest first, one query per chunk."""
    found: dict[str, list[tuple[str, float | None, str | None, datetime]]] = {}
    for part in chunks(device_ids):
        ranked = (
            select(
                Reading.device_id,
                Reading.metric,
                Reading.value,
                Reading.code,
                Reading.ts,
                func.row_number()
                .over(partition_by=Reading.device_id, order_by=Reading.ts.desc())
                .label("n"),
            )
            .where(Reading.device_id.in_(part))
            .subquery()
        )
        rows = session.execute(
            select(ranked.c.device_id, ranked.c.metric, ranked.c.value, ranked.c.code, ranked.c.ts)
            .where(ranked.c.n <= limit)
            .order_by(ranked.c.device_id, ranked.c.ts.desc())
        )
        for device, metric, value, code, ts in rows:
            found.setdefault(device, []).append((metric, value, code, ts))
    return found


def earlier_tickets(
    session: Session, device_ids: Collection[str], limit: int
) -> dict[str, list[Ticket]]:
    """Each device's ``limit`` most recently opened tickets, newest first."""
    found: dict[str, list[Ticket]] = {}
    for part in chunks(device_ids):
        ranked = (
            select(
                Ticket.id,
                func.row_number()
                .over(
                    partition_by=Ticket.device_id,
                    order_by=(Ticket.opened_at.desc(), Ticket.id.desc()),
                )
                .label("n"),
            )
            .where(Ticket.device_id.in_(part))
            .subquery()
        )
        rows = session.scalars(
            select(Ticket)
            .join(ranked, ranked.c.id == Ticket.id)
            .where(ranked.c.n <= limit)
            .order_by(Ticket.opened_at.desc(), Ticket.id.desc())
        )
        for ticket in rows:
            assert ticket.device_id is not None
            found.setdefault(ticket.device_id, []).append(ticket)
    return found


def load(session: Session) -> dict[str, int]:
    """Open tickets assigned to each technician (their load)."""
    query = (
        select(Ticket.technician_id, func.count())
        .where(Ticket.open_fingerprint.is_not(None), Ticket.technician_id.is_not(None))
        .group_by(Ticket.technician_id)
    )
    rows = session.execute(query).all()
    return {technician: int(count) for technician, count in rows if technician is not None}


_TICKET_COLUMNS = (
    "kind",
    "fingerprint",
    "open_fingerprint",
    "status",
    "priority",
    "title",
    "opened_at",
    "updated_at",
    "device_id",
    "site_id",
    "customer_id",
    "technician_id",
    "fault",
    "suggested_fix",
    "alert_count",
    "sla_due_at",
    "closed_at",
    "severity",
    "rule_id",
    "closure_code",
    "resolution_note",
    "repeat_visits",
    "previous_ticket_id",
    "ack_due_at",
    "escalation_step",
    "accepted_at",
    "resolved_at",
    "cleared_at",
)


def _ticket_values(ticket: TicketRecord) -> dict[str, Any]:
    values = {name: getattr(ticket, name) for name in _TICKET_COLUMNS}
    values["dispatch"] = dict(ticket.dispatch)
    values["passed_over"] = list(ticket.passed_over)
    return values


def reserve_ids(session: Session, model: type[Any], count: int) -> list[int]:
    """``count`` fresh ids for rows of ``model`` about to be inserted.

    A multi-row ``INSERT ... RETURNING`` that must keep the rows' order is slow to build
    and to parse at a storm's size; with the ids known beforehand, the rows go in as a
    plain ``executemany`` (pipelined by psycopg). PostgreSQL takes them from the table's
    sequence (other writers may insert meanwhile); SQLite's writers are serialised by
    ``BEGIN IMMEDIATE``, so the ids after the largest one are ours until we commit.
    """
    if count == 0:
        return []
    table = model.__table__
    if session.get_bind().dialect.name == "postgresql":
        return list(
            session.scalars(
                text(
                    "SELECT nextval(pg_get_serial_sequence(:table, 'id'))"
                    " FROM generate_series(1, :n)"
                ),
                {"table": table.name, "n": count},
            )
        )
    session.flush()
    largest = session.scalar(select(func.max(table.c.id))) or 0
    return list(range(largest + 1, largest + 1 + count))


def insert_tickets(session: Session, tickets: Sequence[TicketRecord]) -> list[int]:
    """Insert new tickets, all or nothing; their ids in the same order. Raises
    :class:`TicketExists` (having stored none, the transaction still usable) when another
    writer holds one of their open fingerprints."""
    if not tickets:
        return []
    ids = reserve_ids(session, Ticket, len(tickets))
    try:
        with session.begin_nested():
            session.connection().execute(
                insert(Ticket),
                [{"id": i, **_ticket_values(t)} for i, t in zip(ids, tickets, strict=True)],
            )
    except IntegrityError as exc:
        raise TicketExists(f"{len(tickets)} tickets") from exc
    return ids


def update_tickets(session: Session, tickets: Sequence[TicketRecord]) -> None:
    """Write every field of tickets this module inserted (by id)."""
    if tickets:
        session.execute(update(Ticket), [{"id": t.id, **_ticket_values(t)} for t in tickets])


def add_ticket_events(session: Session, events: Sequence[TicketEventRecord]) -> list[int]:
    """Insert ticket events; their ids in the same order (the outbox keys its rows by them)."""
    if not events:
        return []
    ids = reserve_ids(session, TicketEvent, len(events))
    session.connection().execute(
        insert(TicketEvent),
        [
            {
                "id": i,
                "ticket_id": e.ticket_id,
                "at": e.at,
                "kind": e.kind,
                "actor": e.actor,
                "from_status": e.from_status,
                "to_status": e.to_status,
                "detail": dict(e.detail),
            }
            for i, e in zip(ids, events, strict=True)
        ],
    )
    return ids


def enqueue(session: Session, notifications: Sequence[NotificationRecord]) -> int:
    """Queue many outbox rows in one statement, leaving out any whose dedupe key is
    already queued (a retried cause queues nothing twice); returns how many were queued."""
    taken: set[str] = set()
    for part in chunks([n.dedupe_key for n in notifications]):
        taken.update(
            session.scalars(
                select(Notification.dedupe_key).where(Notification.dedupe_key.in_(part))
            )
        )
    fresh: dict[str, NotificationRecord] = {}
    for n in notifications:
        if n.dedupe_key not in taken:
            fresh.setdefault(n.dedupe_key, n)
    if fresh:
        session.connection().execute(
            insert(Notification), [_notification_values(n) for n in fresh.values()]
        )
    return len(fresh)


def _notification_values(n: NotificationRecord) -> Mapping[str, Any]:
    return {
        "dedupe_key": n.dedupe_key,
        "ticket_id": n.ticket_id,
        "event": n.event,
        "recipient_role": n.recipient_role,
        "recipient_id": n.recipient_id,
        "channel": n.channel,
        "address": n.address,
        "locale": n.locale,
        "context": dict(n.context),
        "critical": n.critical,
        "status": "queued",
        "attempts": 0,
        "next_attempt_at": n.next_attempt_at,
        "created_at": n.created_at,
        "fallback_of": n.fallback_of,
    }


def source_tickets(session: Session, fingerprints: Collection[str]) -> dict[str, int]:
    """The ticket of each open alert fingerprint that has one."""
    found: dict[str, int] = {}
    for part in chunks(fingerprints):
        rows = session.execute(
            select(Alert.open_fingerprint, Alert.ticket_id).where(
                Alert.open_fingerprint.in_(part), Alert.ticket_id.is_not(None)
            )
        )
        found.update({fp: ticket for fp, ticket in rows if fp is not None and ticket})
    return found


def attach(session: Session, ticket_of: Mapping[int, int]) -> None:
    """Point alerts at tickets (alert id -> ticket id), in one statement."""
    if ticket_of:
        session.flush()
        session.execute(
            update(Alert), [{"id": alert, "ticket_id": t} for alert, t in ticket_of.items()]
        )
        for instance in list(session.identity_map.values()):
            if isinstance(instance, Alert) and instance.id in ticket_of:
                session.expire(instance)


def statuses(session: Session, ticket_ids: Collection[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for part in chunks(ticket_ids):
        rows = session.execute(select(Ticket.id, Ticket.status).where(Ticket.id.in_(part)))
        found.update((ticket, status) for ticket, status in rows)
    return found
