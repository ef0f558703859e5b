"""forewarn's live path on a simulated clock, over the in-memory store: what a backtest runs.

Everything the service does between a reading and a message runs here, through the same
code: the monitors (:class:`~forewarn.monitors.core.AlertCore`, any rule kind), the alert
lifecycle, ticketing (:class:`~forewarn.ticketing.tickets.Ticketing`: one ticket per
episode, dispatch, reopen on recurrence), its scheduled sweep (escalation, re-dispatch,
auto-close, closing after the reopen window), and the sender with the contact policy
(merge window, quiet hours in the customer's zone, daily budget, rendering) over a channel
that sends nothing. Readings and alerts live in memory; ticketing works on a scratch SQLite
database in memory (:mod:`forewarn.store.scratch`), gone when the run ends.

People are the one thing history must stand in for: a simulated technician ACKs each work
order ``accept_after`` after it is assigned and answers DONE ``visit`` later, through the
technicians' own SMS command handler (so the customer hears who is coming, then the
all-clear and the survey). With ``accept_after`` None nobody answers, and every job runs
the whole escalation chain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.schema import Settings, TicketingSettings
from forewarn.monitors.core import AlertCore
from forewarn.monitors.replay import SimulatedClock, run
from forewarn.notifier.channels import Channel
from forewarn.notifier.channels.dry_run import DryRunChannel
from forewarn.notifier.render import Renderer
from forewarn.notifier.sender import Sender
from forewarn.ports import AlertEventRecord, AlertRecord
from forewarn.store.engine import make_scratch_engine, make_sessionmaker
from forewarn.store.models import Notification, Ticket, TicketEvent
from forewarn.store.reference import sync_reference_data
from forewarn.store.scratch import ScratchStore
from forewarn.telemetry.sample import Sample
from forewarn.ticketing.commands import handle_technician_sms
from forewarn.ticketing.lifecycle import NOT_STARTED
from forewarn.ticketing.tickets import Ticketing


@dataclass(frozen=True)
class Crew:
    """How the simulated technicians answer (see the module docstring)."""

    accept_after: timedelta | None
    visit: timedelta


@dataclass(frozen=True)
class TicketOutcome:
    """A ticket as the simulation left it."""

    id: int
    device_id: str | None
    site_id: str | None
    customer_id: str | None
    rule_id: str | None
    severity: str
    status: str
    opened_at: datetime
    closure_code: str | None
    repeat_visits: int
    visits: int
    """How many times a technician finished a job on it (DONE / NOFAULT)."""
    escalations: int
    auto_closed: bool


@dataclass(frozen=True)
class MessageOutcome:
    """One notification row as the simulation left it (``status`` ``sent``: it went out)."""

    id: int
    event: str
    channel: str
    recipient_role: str
    recipient_id: str
    status: str
    critical: bool
    created_at: datetime
    sent_at: datetime | None
    body: str | None
    merged_into: int | None
    ticket_id: int | None


@dataclass(frozen=True)
class Outcome:
    """Everything one simulated run produced."""

    readings: int
    start: datetime | None
    end: datetime | None
    alerts: tuple[AlertRecord, ...]
    alert_events: tuple[AlertEventRecord, ...]
    tickets: tuple[TicketOutcome, ...]
    messages: tuple[MessageOutcome, ...]
    visit: timedelta
    """Technician time one visit took (from ACK to DONE)."""


def simulate(
    settings: Settings,
    ordered: Sequence[Sample],
    step: timedelta,
    crew: Crew,
    *,
    start: datetime | None = None,
    until: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> Outcome:
    """Run ``ordered`` (sorted by event time) through the live path; the clock starts at
    ``start`` (default: the first reading) and runs on to ``until`` after the last one."""
    if not ordered and (start is None or until is None):
        return Outcome(0, None, None, (), (), (), (), crew.visit)
    first = start if start is not None else ordered[0].ts
    path = LivePath(settings, first, crew)
    try:
        end = path.replay(ordered, step, until=until, progress=progress)
        return path.outcome(len(ordered), first, end)
    finally:
        path.close()


class LivePath:
    """One simulated forewarn (see the module docstring)."""

    def __init__(self, settings: Settings, start: datetime, crew: Crew) -> None:
        self.settings = settings
        self.crew = crew
        self.clock = SimulatedClock(start)
        self.engine = make_scratch_engine()
        self.sessions = make_sessionmaker(self.engine)
        with self.sessions.begin() as session:
            sync_reference_data(session, settings, start)
        self.ticketing = Ticketing(settings.ticketing)
        self.store = ScratchStore(
            settings.devices,
            settings.sites,
            start,
            self.sessions,
            self.ticketing,
            settings.alerting.work_order_statuses,
        )
        self.core = AlertCore(settings, self.store)
        channels: dict[str, Channel] = {
            "sms": DryRunChannel("sms"),
            "email": DryRunChannel("email"),
        }
        self.sender = Sender(
            self.sessions,
            channels,
            Renderer(default_locale=settings.notifications.default_locale),
            self.clock,
            settings.notifications,
            "backtest",
        )
        self.scheduled = Scheduled(
            settings.ticketing,
            self.sessions,
            self.ticketing,
            self.sender,
            crew,
            self.store.sync,
            lambda: self.store.scratch_units,
        )

    def close(self) -> None:
        self.engine.dispose()

    def replay(
        self,
        ordered: Sequence[Sample],
        step: timedelta,
        *,
        until: datetime | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> datetime:
        store, core = self.store, self.core

        def ingest(batch: Sequence[Sample], now: datetime) -> None:
            with store.begin() as stores:
                stores.add_readings(batch, now)
                core.on_samples(stores, batch, now)

        if not ordered:
            assert until is not None
            return self._idle(step, until)
        return run(
            core,
            ordered,
            step,
            ingest,
            self.clock,
            progress=progress,
            timers=self.scheduled,
            until=until,
        )

    def _idle(self, step: timedelta, until: datetime) -> datetime:
        # No reading at all: the clock still runs (offline timers fire, nothing else).
        from forewarn.monitors import sweeps

        moment = self.clock.at
        while moment + step <= until:
            moment = self.clock.at = moment + step
            sweeps.sweep(self.core, moment)
        return moment

    # -- what happened -----------------------------------------------------------------

    def outcome(self, readings: int, start: datetime, end: datetime) -> Outcome:
        return read_outcome(
            self.sessions,
            self.store.all_alerts(),
            self.store.events,
            readings,
            start,
            end,
            self.crew.visit,
        )


class Drains(Protocol):
    def drain(self, limit: int = ...) -> int: ...


class Scheduled:
    """The service's scheduled jobs beside the monitors' sweep, on a simulated clock (a
    :class:`~forewarn.monitors.replay.Timers`): the ticket sweep, the simulated crew's
    answers and the outbox, each run when due. ``changes`` counts the writes made
    elsewhere (ticketing called from the monitors), after which the due times are
    read again; ``before`` runs first (copying alerts to where ticketing reads them)."""

    def __init__(
        self,
        settings: TicketingSettings,
        sessions: sessionmaker[Session],
        ticketing: Ticketing,
        sender: Drains,
        crew: Crew,
        before: Callable[[], None] = lambda: None,
        changes: Callable[[], int] = lambda: 0,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.ticketing = ticketing
        self.sender = sender
        self.crew = crew
        self._before = before
        self._changes = changes
        self._due: tuple[datetime | None, datetime | None, datetime | None] = (None, None, None)
        """When the outbox, the ticket sweep and the crew are next due."""
        self._due_known = -1
        self._runs = 0
        # Built once: the clock asks after every change.
        self._queued = select(func.min(Notification.next_attempt_at)).where(
            Notification.status == "queued"
        )
        self._ack_due = select(func.min(Ticket.ack_due_at)).where(
            Ticket.status.in_(("assigned", "declined"))
        )
        self._cleared = select(func.min(Ticket.cleared_at)).where(
            Ticket.status.in_(NOT_STARTED), Ticket.open_fingerprint.is_not(None)
        )
        self._resolved = select(func.min(Ticket.resolved_at)).where(
            Ticket.status.in_(("resolved", "no_fault_found"))
        )
        self._working = select(
            Ticket.id, Ticket.status, Ticket.ack_due_at, Ticket.severity, Ticket.accepted_at
        ).where(
            Ticket.kind == "repair",
            Ticket.technician_id.is_not(None),
            Ticket.status.in_(("assigned", "accepted")),
        )

    def next_due(self) -> datetime | None:
        known = self._changes() + self._runs
        if known != self._due_known:
            self._due, self._due_known = self._next_due(), known
        return min((d for d in self._due if d is not None), default=None)

    def _next_due(self) -> tuple[datetime | None, datetime | None, datetime | None]:
        settings = self.settings
        with self.sessions() as session:
            queued = session.scalar(self._queued)
            sweep = [session.scalar(self._ack_due)]
            if settings.on_alert_cleared == "auto_close":
                cleared = session.scalar(self._cleared)
                sweep.append(cleared + settings.cleared_grace if cleared else None)
            resolved = session.scalar(self._resolved)
            sweep.append(resolved + settings.reopen_within if resolved else None)
            answers = self._answers(session)
        return (
            queued,
            min((d for d in sweep if d is not None), default=None),
            answers[0][0] if answers else None,
        )

    def run(self, now: datetime) -> None:
        """Everything due at ``now``: the ticket sweep, technicians' answers, the outbox."""
        self.next_due()
        _, sweep, answer = self._due
        self._runs += 1
        self._before()
        if sweep is not None and sweep <= now:
            with self.sessions.begin() as session:
                self.ticketing.sweep(session, now)
        if answer is not None and answer <= now:
            with self.sessions.begin() as session:
                for when, ticket_id, command in self._answers(session):
                    if when > now:
                        break
                    ticket = session.get(Ticket, ticket_id)
                    assert ticket is not None
                    assert ticket.technician_id is not None
                    handle_technician_sms(
                        session, ticket.technician_id, command, now, redispatch=self.ticketing
                    )
        # The sweep and the answers queue messages due now; the sender sends what is due.
        self.sender.drain()

    def _answers(self, session: Session) -> list[tuple[datetime, int, str]]:
        """When each simulated technician answers next: (when, ticket, SMS command)."""
        crew = self.crew
        if crew.accept_after is None:
            return []
        found = []
        rows = session.execute(self._working).all()
        for ticket_id, status, ack_due_at, severity, accepted_at in rows:
            if status == "assigned" and ack_due_at is not None:
                assigned = ack_due_at - self.ticketing.ack_within(severity)
                found.append((assigned + crew.accept_after, ticket_id, f"ACK {ticket_id}"))
            elif status == "accepted" and accepted_at is not None:
                found.append((accepted_at + crew.visit, ticket_id, f"DONE {ticket_id}"))
        return sorted(found)


def read_outcome(
    sessions: sessionmaker[Session],
    alerts: Sequence[AlertRecord],
    alert_events: Sequence[AlertEventRecord],
    readings: int,
    start: datetime,
    end: datetime,
    visit: timedelta,
) -> Outcome:
    """The outcome of a run whose tickets and messages are in the database ``sessions``."""
    with sessions() as session:
        events = session.execute(select(TicketEvent.ticket_id, TicketEvent.kind)).all()
        visits: dict[int, int] = {}
        escalations: dict[int, int] = {}
        auto_closed: set[int] = set()
        for ticket_id, kind in events:
            if kind in ("resolve", "no_fault"):
                visits[ticket_id] = visits.get(ticket_id, 0) + 1
            elif kind in ("escalated", "escalated_to_supervisor"):
                escalations[ticket_id] = escalations.get(ticket_id, 0) + 1
            elif kind == "auto_closed":
                auto_closed.add(ticket_id)
        tickets = tuple(
            TicketOutcome(
                id=t.id,
                device_id=t.device_id,
                site_id=t.site_id,
                customer_id=t.customer_id,
                rule_id=t.rule_id,
                severity=t.severity,
                status=t.status,
                opened_at=t.opened_at,
                closure_code=t.closure_code,
                repeat_visits=t.repeat_visits,
                visits=visits.get(t.id, 0),
                escalations=escalations.get(t.id, 0),
                auto_closed=t.id in auto_closed,
            )
            for t in session.scalars(select(Ticket).order_by(Ticket.id))
        )
        messages = tuple(
            MessageOutcome(
                id=n.id,
                event=n.event,
                channel=n.channel,
                recipient_role=n.recipient_role,
                recipient_id=n.recipient_id,
                status=n.status,
                critical=n.critical,
                created_at=n.created_at,
                sent_at=n.sent_at,
                body=n.body,
                merged_into=n.merged_into,
                ticket_id=n.ticket_id,
            )
            for n in session.scalars(select(Notification).order_by(Notification.id))
        )
    return Outcome(
        readings=readings,
        start=start,
        end=end,
        alerts=tuple(alerts),
        alert_events=tuple(alert_events),
        tickets=tickets,
        messages=messages,
        visit=visit,
    )
