"""Stored history as a backtest reads it: readings in one streamed query, past tickets.

Readings come in event-time order from one query on the ``ts`` index (no ORM objects:
a week of a fleet is millions of rows). On SQLite the timestamps are parsed from the
stored text directly, several times faster than the column type's conversion.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, and_, select

from forewarn.store.models import Reading, Ticket, TicketEvent, sqlite_time
from forewarn.telemetry.sample import Sample

_FETCH = 20_000
"""Rows fetched per round trip."""


def read_readings(
    engine: Engine,
    since: datetime,
    until: datetime,
    *,
    devices: Collection[str] | None = None,
    metrics: Collection[str] | None = None,
) -> Iterator[Sample]:
    """Readings with ``since <= ts < until`` (of ``devices`` and ``metrics`` when given),
    oldest first. Readings stored as late were never judged live and are left out."""
    if devices is not None and not devices:
        return
    if engine.dialect.name == "sqlite":
        yield from _sqlite_readings(engine, since, until, devices, metrics)
        return
    query = (
        select(
            Reading.device_id,
            Reading.metric,
            Reading.ts,
            Reading.value,
            Reading.code,
            Reading.stale,
        )
        .where(Reading.ts >= since, Reading.ts < until, Reading.late.is_(False))
        .order_by(Reading.ts, Reading.id)
    )
    if devices is not None:
        query = query.where(Reading.device_id.in_(sorted(devices)))
    if metrics is not None:
        query = query.where(Reading.metric.in_(sorted(metrics)))
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=_FETCH).execute(query)
        for device, metric, ts, value, code, stale in result:
            yield Sample(device, metric, ts, ts, value, code, bool(stale))


def _sqlite_readings(
    engine: Engine,
    since: datetime,
    until: datetime,
    devices: Collection[str] | None,
    metrics: Collection[str] | None,
) -> Iterator[Sample]:
    where = ["ts >= ?", "ts < ?", "NOT late"]
    params: list[object] = [sqlite_time(since), sqlite_time(until)]
    for column, values in (("device_id", devices), ("metric", metrics)):
        if values is not None:
            # A long list is cheaper as a temporary table than as parameters.
            where.append(f"{column} IN (SELECT value FROM json_each(?))")
            params.append(_json_list(values))
    statement = (
        "SELECT device_id, metric, ts, value, code, stale FROM readings "
        f"WHERE {' AND '.join(where)} ORDER BY ts, id"
    )
    parse = datetime.fromisoformat
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(statement, params)
            while rows := cursor.fetchmany(_FETCH):
                for device, metric, text, value, code, stale in rows:
                    ts = parse(text).replace(tzinfo=UTC)
                    yield Sample(device, metric, ts, ts, value, code, bool(stale))
        finally:
            cursor.close()


def _json_list(values: Collection[str]) -> str:
    import json

    return json.dumps(sorted(values))


@dataclass(frozen=True)
class PastTicket:
    """A real repair ticket of the period, with how it ended."""

    id: int
    device_id: str
    rule_id: str | None
    opened_at: datetime
    ended_at: datetime | None
    closure_code: str | None


def read_tickets(
    engine: Engine, since: datetime, until: datetime, devices: Collection[str] | None = None
) -> list[PastTicket]:
    """Repair tickets opened in ``[since, until)`` (on ``devices`` when given)."""
    query = (
        select(
            Ticket.id,
            Ticket.device_id,
            Ticket.rule_id,
            Ticket.opened_at,
            Ticket.resolved_at,
            Ticket.closed_at,
            Ticket.closure_code,
        )
        .where(
            Ticket.kind == "repair",
            Ticket.device_id.is_not(None),
            Ticket.opened_at >= since,
            Ticket.opened_at < until,
        )
        .order_by(Ticket.id)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    wanted = set(devices) if devices is not None else None
    return [
        PastTicket(tid, device, rule, opened, resolved or closed, code)
        for tid, device, rule, opened, resolved, closed, code in rows
        if device is not None and (wanted is None or device in wanted)
    ]


@dataclass(frozen=True)
class CrewTimes:
    """How technicians answered in the stored history (medians; None: no example)."""

    accept_after: timedelta | None
    visit: timedelta | None
    accepted: int
    """Work orders acknowledged in the history looked at."""
    visits: int
    """Jobs finished after an acknowledgement."""


def crew_times(engine: Engine, since: datetime) -> CrewTimes:
    """Median time from assignment to ACK and from ACK to DONE/NOFAULT, of repair tickets
    acknowledged since ``since``."""
    assigned = (
        select(TicketEvent.ticket_id, TicketEvent.at)
        .where(TicketEvent.kind.in_(("assigned", "reassigned")))
        .subquery()
    )
    query = (
        select(Ticket.id, Ticket.accepted_at, Ticket.resolved_at, assigned.c.at)
        .join(
            assigned, and_(assigned.c.ticket_id == Ticket.id, assigned.c.at <= Ticket.accepted_at)
        )
        .where(Ticket.kind == "repair", Ticket.accepted_at >= since)
    )
    latest: dict[int, tuple[datetime, datetime | None, datetime]] = {}
    with engine.connect() as connection:
        for ticket_id, accepted_at, resolved_at, assigned_at in connection.execute(query):
            kept = latest.get(ticket_id)
            if kept is None or kept[2] < assigned_at:
                latest[ticket_id] = (accepted_at, resolved_at, assigned_at)
    waits = [(a - s).total_seconds() for a, _, s in latest.values()]
    visits = [(r - a).total_seconds() for a, r, _ in latest.values() if r is not None and r > a]
    return CrewTimes(
        timedelta(seconds=statistics.median(waits)) if waits else None,
        timedelta(seconds=statistics.median(visits)) if visits else None,
        len(waits),
        len(visits),
    )
