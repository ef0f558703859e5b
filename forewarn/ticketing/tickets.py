"""Opening, updating and dispatching repair tickets; every change is a ``ticket_events`` row.

One ticket per fault episode of a device: a second alert on a device whose ticket is open
is attached to it (the technician already on the job needs no second work order), and a
more severe one raises the ticket's priority and brings its SLA forward. The
``open_fingerprint`` unique column makes this hold under concurrent workers: the loser of
a race gets an IntegrityError inside a savepoint (or a compare-and-set that matches no
row) and attaches instead.

A fault that recurs within ``ticketing.reopen_within`` of its ticket being resolved reopens
that ticket and counts a repeat visit; later, a new ticket is opened and linked to the old.

:meth:`Ticketing.sweep` is the scheduled half (leader only): escalation of unacknowledged
jobs, re-dispatch of declined ones, the auto-close of tickets whose fault cleared before
anyone set out, and closing resolved tickets once their reopen window has passed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Update, and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forewarn.config.schema import ContactSettings, TicketingSettings
from forewarn.ports import TicketEventRecord, TicketRecord
from forewarn.store.models import Alert, Device, Site, Technician, Ticket
from forewarn.ticketing import self_service
from forewarn.ticketing.dispatch import Candidate, Decision, Job, choose_technician
from forewarn.ticketing.lifecycle import NOT_STARTED, WORKING
from forewarn.ticketing.notices import (
    send_dispatcher_alert,
    send_fault_notice,
    send_job_cancelled,
    send_resolved,
    send_work_order,
)
from forewarn.ticketing.self_service import SelfServiceCatalog
from forewarn.ticketing.shifts import schedule_from
from forewarn.ticketing.transitions import apply, record, record_opened

log = logging.getLogger(__name__)

OPEN_STATUSES = WORKING
PRIORITY_OF = {"critical": "P1", "major": "P2", "minor": "P3", "info": "P4"}
SEVERITY_RANK = {"info": 0, "minor": 1, "major": 2, "critical": 3}
SWEEP_BATCH = 200
"""Tickets handled per kind of work in one sweep; the rest wait for the next run."""


@dataclass(frozen=True)
class SweepReport:
    """What one :meth:`Ticketing.sweep` did (for logs and tests)."""

    escalated: int = 0
    redispatched: int = 0
    auto_closed: int = 0
    closed: int = 0


class Ticketing:
    """Turns firing alerts into work orders, dispatches them and queues the notices.

    Implements the monitors' ``AlertSink``: called inside the alert's transaction.
    """

    def __init__(
        self, settings: TicketingSettings, self_service: SelfServiceCatalog | None = None
    ) -> None:
        self._settings = settings
        self._self_service = self_service or SelfServiceCatalog()

    @property
    def settings(self) -> TicketingSettings:
        return self._settings

    # -- alerts -> tickets ---------------------------------------------------------------

    def alert_fired(self, session: Session, alert: Alert, now: datetime) -> None:
        device = session.get(Device, alert.subject)
        if device is None:
            log.warning("alert %s is about unknown device %s", alert.id, alert.subject)
            return
        fingerprint = f"repair:{device.id}"
        existing = session.scalar(select(Ticket).where(Ticket.open_fingerprint == fingerprint))
        if existing is not None:
            self._attach(session, existing, alert, now)
            return
        previous = session.scalar(
            select(Ticket)
            .where(Ticket.fingerprint == fingerprint)
            .order_by(Ticket.opened_at.desc(), Ticket.id.desc())
            .limit(1)
        )
        if previous is not None and self.recurs(previous, now):
            self._reopen(session, previous, alert, now)
            return
        site = session.get(Site, device.site_id)
        assert site is not None
        ticket = Ticket(
            kind="repair",
            fingerprint=fingerprint,
            open_fingerprint=fingerprint,
            status="open",
            severity=alert.severity,
            priority=PRIORITY_OF.get(alert.severity, "P3"),
            title=f"{device.model} {device.id} at {site.name}: {alert.summary}",
            device_id=device.id,
            site_id=site.id,
            customer_id=site.customer_id,
            rule_id=alert.rule_id,
            fault=alert.summary,
            suggested_fix=alert.suggested_fix,
            alert_count=1,
            repeat_visits=0,
            escalation_step=0,
            passed_over=[],
            previous_ticket_id=previous.id if previous is not None else None,
            opened_at=now,
            updated_at=now,
            sla_due_at=now + self.sla(alert.severity),
        )
        try:
            with session.begin_nested():
                session.add(ticket)
                session.flush()
        except IntegrityError:
            # Another worker opened the episode's ticket first: join it.
            winner = session.scalar(select(Ticket).where(Ticket.open_fingerprint == fingerprint))
            assert winner is not None
            self._attach(session, winner, alert, now)
            return
        alert.ticket_id = ticket.id
        detail: dict[str, object] = {"alert_id": alert.id, "rule": alert.rule_id}
        if previous is not None:
            detail["previous_ticket"] = previous.id
        opened = record_opened(session, ticket, now, "monitor", detail)
        self.dispatch(session, ticket, now)
        steps = self._self_service.for_alert(alert.rule_id, alert.evidence or {})
        offered = steps is not None and self_service.offer(
            session,
            ticket,
            steps,
            now,
            key=f"ticket-event:{opened.id}",
            links=self._self_service.links,
            default_locale=self._self_service.default_locale,
        )
        if not offered:
            send_fault_notice(session, ticket, opened, now)

    def recurs(self, previous: Ticket, now: datetime) -> bool:
        """Whether a fault on the device of ``previous`` reopens it (a repeat visit)."""
        return (
            previous.status in ("resolved", "no_fault_found", "closed")
            and previous.resolved_at is not None
            and now - previous.resolved_at <= self._settings.reopen_within
        )

    def _reopen(self, session: Session, ticket: Ticket, alert: Alert, now: datetime) -> None:
        # Compare-and-set: of two workers reopening the same ticket, one matches the row.
        status = ticket.status
        try:
            with session.begin_nested():
                claimed = _compare_and_set(
                    session,
                    update(Ticket)
                    .where(
                        Ticket.id == ticket.id,
                        Ticket.status == status,
                        Ticket.open_fingerprint.is_(None),
                    )
                    .values(open_fingerprint=ticket.fingerprint),
                )
        except IntegrityError:
            claimed = False
        session.refresh(ticket)
        if not claimed:
            winner = session.scalar(
                select(Ticket).where(Ticket.open_fingerprint == ticket.fingerprint)
            )
            assert winner is not None
            self._attach(session, winner, alert, now)
            return
        last_technician = ticket.technician_id
        reopened = apply(
            session,
            ticket,
            "reopen",
            actor="monitor",
            now=now,
            detail={
                "alert_id": alert.id,
                "rule": alert.rule_id,
                "repeat_visit": ticket.repeat_visits + 1,
                "last_technician": last_technician,
            },
        )
        alert.ticket_id = ticket.id
        ticket.repeat_visits += 1
        ticket.alert_count += 1
        ticket.technician_id = None
        ticket.passed_over = []
        ticket.escalation_step = 0
        ticket.cleared_at = None
        ticket.accepted_at = None
        ticket.severity = alert.severity
        ticket.priority = PRIORITY_OF.get(alert.severity, "P3")
        ticket.fault = alert.summary
        ticket.sla_due_at = now + self.sla(alert.severity)
        # Who fixed it last knows the site: prefer them, unless the filters rule them out.
        self.dispatch(session, ticket, now, also_preferred=last_technician)
        send_fault_notice(session, ticket, reopened, now)

    def _attach(self, session: Session, ticket: Ticket, alert: Alert, now: datetime) -> None:
        alert.ticket_id = ticket.id
        ticket.alert_count += 1
        ticket.updated_at = now
        ticket.cleared_at = None
        record(
            session,
            ticket,
            now,
            "alert_attached",
            "monitor",
            {"alert_id": alert.id, "rule": alert.rule_id, "summary": alert.summary},
        )
        if SEVERITY_RANK.get(alert.severity, 0) > SEVERITY_RANK.get(ticket.severity, 0):
            self._raise(session, ticket, alert, now)

    def alert_escalated(self, session: Session, alert: Alert, now: datetime) -> None:
        """An announced alert turned more severe: raise the ticket it is attached to (it is
        the same alert, so ``alert_count`` stays). If that ticket has ended meanwhile, the
        alert is news again and goes the way of a firing one."""
        ticket = session.get(Ticket, alert.ticket_id) if alert.ticket_id is not None else None
        if ticket is None or ticket.open_fingerprint is None:
            self.alert_fired(session, alert, now)
            return
        if SEVERITY_RANK.get(alert.severity, 0) > SEVERITY_RANK.get(ticket.severity, 0):
            ticket.updated_at = now
            self._raise(session, ticket, alert, now)

    def _raise(self, session: Session, ticket: Ticket, alert: Alert, now: datetime) -> None:
        before = (ticket.severity, ticket.priority, ticket.sla_due_at)
        ticket.severity = alert.severity
        ticket.priority = PRIORITY_OF.get(alert.severity, "P3")
        due = now + self.sla(alert.severity)
        if ticket.sla_due_at is None or due < ticket.sla_due_at:
            ticket.sla_due_at = due
        if ticket.ack_due_at is not None:
            ticket.ack_due_at = min(ticket.ack_due_at, now + self.ack_within(alert.severity))
        record(
            session,
            ticket,
            now,
            "priority_raised",
            "monitor",
            {
                "alert_id": alert.id,
                "severity": [before[0], ticket.severity],
                "priority": [before[1], ticket.priority],
                "sla_due": [
                    before[2].isoformat() if before[2] else None,
                    ticket.sla_due_at.isoformat() if ticket.sla_due_at else None,
                ],
            },
        )

    def alert_resolved(self, session: Session, alert: Alert, now: datetime) -> None:
        if alert.ticket_id is None:
            return
        ticket = session.get(Ticket, alert.ticket_id)
        if ticket is None or ticket.open_fingerprint is None:
            return
        # A flapping alert whose rule still says "firing" is still firing.
        # Alerts the ticket only lists (devices its cause explains, never announced) do
        # not keep it open: they clear with their cause or are announced on their own.
        still_firing = session.scalar(
            select(func.count()).where(
                Alert.ticket_id == ticket.id,
                Alert.id != alert.id,
                Alert.notified_at.is_not(None),
                or_(
                    Alert.state == "firing",
                    and_(Alert.state == "flapping", Alert.condition == "firing"),
                ),
            )
        )
        detail: dict[str, object] = {"alert_id": alert.id, "summary": alert.summary}
        if still_firing:
            detail["outcome"] = f"{still_firing} other alert(s) still firing"
        elif ticket.status not in NOT_STARTED:
            detail["outcome"] = "work already under way: the technician finishes the job"
        elif self._settings.on_alert_cleared == "keep":
            detail["outcome"] = "kept for inspection (ticketing.on_alert_cleared: keep)"
            ticket.cleared_at = now
        else:
            ticket.cleared_at = now
            closes = now + self._settings.cleared_grace
            detail["outcome"] = f"closes at {closes.isoformat()} unless the fault returns"
        record(session, ticket, now, "alert_cleared", "monitor", detail)

    # -- dispatch ------------------------------------------------------------------------

    def sla(self, severity: str) -> timedelta:
        for level, due in self._settings.sla.items():
            if level == severity:
                return due
        return self._settings.sla.get("major", timedelta(days=1))

    def ack_within(self, severity: str) -> timedelta:
        within = self._settings.escalation.ack_within
        for level, due in within.items():
            if level == severity:
                return due
        return within.get("major", timedelta(hours=1))

    def dispatch(
        self, session: Session, ticket: Ticket, now: datetime, *, also_preferred: str | None = None
    ) -> Technician | None:
        """Give ``ticket`` to the best eligible technician (skipping everyone in
        ``passed_over``), or put it in the dispatcher queue and tell the dispatcher."""
        decision = self.decide(session, ticket, now, also_preferred=also_preferred)
        ticket.dispatch = decision.record()
        technician = (
            session.get(Technician, decision.technician_id) if decision.technician_id else None
        )
        if technician is None:
            if ticket.status == "declined":
                event = apply(
                    session,
                    ticket,
                    "requeue",
                    actor="dispatch",
                    now=now,
                    detail=decision.record(),
                    kind="queued_for_dispatcher",
                )
            else:
                event = record(
                    session, ticket, now, "queued_for_dispatcher", "dispatch", decision.record()
                )
            self._tell_dispatcher(session, ticket, event, now, decision.reason)
            log.info("ticket %s waits for a dispatcher: %s", ticket.id, decision.reason)
            return None
        action = "reassign" if ticket.status == "assigned" else "assign"
        ticket.technician_id = technician.id
        event = apply(
            session,
            ticket,
            action,
            actor="dispatch",
            now=now,
            detail=decision.record(),
            kind="reassigned" if action == "reassign" else "assigned",
        )
        ticket.ack_due_at = now + self.ack_within(ticket.severity)
        send_work_order(session, ticket, event, now, technician)
        log.info("ticket %s assigned to %s: %s", ticket.id, technician.id, decision.reason)
        return technician

    def assign_to(
        self, session: Session, ticket: Ticket, technician_id: str, now: datetime, actor: str
    ) -> str | None:
        """A dispatcher gives ``ticket`` to a technician of their choosing; returns why not
        (None: assigned). The hard filters still hold: a person may overrule the score,
        never skill, region, shift or capacity."""
        if ticket.status not in ("open", "declined", "assigned"):
            return f"job #{ticket.id} is {ticket.status.replace('_', ' ')}: nothing to assign"
        if ticket.technician_id == technician_id:
            return f"job #{ticket.id} is already assigned to {technician_id}"
        decision = self.decide(session, ticket, now)
        if technician_id in decision.excluded:
            return f"{technician_id} is not eligible: {decision.excluded[technician_id]}"
        if technician_id not in {r.id for r in decision.ranked}:
            return f"unknown technician {technician_id}"
        technician = session.get(Technician, technician_id)
        assert technician is not None
        chosen = {**decision.record(), "chosen": technician_id, "reason": f"chosen by {actor}"}
        previous = session.get(Technician, ticket.technician_id) if ticket.technician_id else None
        ticket.dispatch = chosen
        ticket.technician_id = technician_id
        action = "reassign" if ticket.status == "assigned" else "assign"
        event = apply(
            session,
            ticket,
            action,
            actor=actor,
            now=now,
            detail=chosen,
            kind="reassigned" if action == "reassign" else "assigned",
        )
        ticket.ack_due_at = now + self.ack_within(ticket.severity)
        send_work_order(session, ticket, event, now, technician)
        if previous is not None:
            send_job_cancelled(session, ticket, event, now, previous, "reassigned by dispatch")
        log.info("ticket %s assigned to %s by %s", ticket.id, technician_id, actor)
        return None

    def decide(
        self, session: Session, ticket: Ticket, now: datetime, *, also_preferred: str | None = None
    ) -> Decision:
        """The dispatch decision for ``ticket`` now, without acting on it."""
        device = session.get(Device, ticket.device_id) if ticket.device_id else None
        site = session.get(Site, ticket.site_id) if ticket.site_id else None
        job = self.job(ticket, device, site, now, also_preferred=also_preferred)
        return choose_technician(job, candidates(session, ignore_ticket=ticket.id))

    def job(
        self,
        ticket: Ticket | TicketRecord,
        device: Device | None,
        site: Site | None,
        now: datetime,
        *,
        also_preferred: str | None = None,
    ) -> Job:
        """What dispatch must match for ``ticket`` (pure): skill, region, place, time,
        and whom the customer or site prefers or excludes."""
        preferred: set[str] = {also_preferred} if also_preferred else set()
        excluded: dict[str, str] = {}
        for preference in self._settings.preferences:
            if (preference.customer and preference.customer == ticket.customer_id) or (
                preference.site and preference.site == ticket.site_id
            ):
                preferred.update(preference.preferred)
                whose = (
                    f"customer {preference.customer}"
                    if preference.customer
                    else (f"site {preference.site}")
                )
                for technician in preference.excluded:
                    excluded[technician] = f"excluded by {whose}"
        for technician in ticket.passed_over or ():
            excluded.setdefault(technician, "declined or did not acknowledge this job")
        return Job(
            skill=device.kind if device else "",
            region=site.region if site else "",
            priority=ticket.severity,
            lat=site.lat if site else None,
            lon=site.lon if site else None,
            now=now,
            due=ticket.sla_due_at,
            preferred=frozenset(preferred - set(excluded)),
            excluded=excluded,
        )

    def _tell_dispatcher(
        self, session: Session, ticket: Ticket, event: TicketEventRecord, now: datetime, reason: str
    ) -> None:
        contact = self._settings.dispatcher
        if contact is None:
            return
        send_dispatcher_alert(session, ticket, event, now, contact, "dispatcher", reason)

    # -- the scheduled half --------------------------------------------------------------

    def sweep(self, session: Session, now: datetime) -> SweepReport:
        """Escalate, re-dispatch, auto-close and close what is due at ``now``.

        Each kind of work is found with one set-based query on an index and claimed per
        ticket with a compare-and-set, so two schedulers never act on the same ticket.
        """
        escalated = redispatched = 0
        due = session.execute(
            select(Ticket.id, Ticket.ack_due_at)
            .where(Ticket.ack_due_at <= now, Ticket.status.in_(("assigned", "declined")))
            .order_by(Ticket.ack_due_at, Ticket.id)
            .limit(SWEEP_BATCH)
        ).all()
        for ticket_id, ack_due_at in due:
            ticket = self._claim(session, ticket_id, ack_due_at) if ack_due_at else None
            if ticket is None:
                continue
            if ticket.status == "declined":
                self.dispatch(session, ticket, now)
                redispatched += 1
            else:
                self._escalate(session, ticket, now)
                escalated += 1
        auto_closed = self._auto_close(session, now)
        closed = self._close_resolved(session, now)
        return SweepReport(escalated, redispatched, auto_closed, closed)

    def _claim(self, session: Session, ticket_id: int, ack_due_at: datetime) -> Ticket | None:
        claim = (
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.ack_due_at == ack_due_at)
            .values(ack_due_at=None)
        )
        if not _compare_and_set(session, claim):
            return None
        return session.get(Ticket, ticket_id, populate_existing=True)

    def _escalate(self, session: Session, ticket: Ticket, now: datetime) -> None:
        """No ACK in time: the next best technician, or the supervisor when the handoffs
        are used up (or nobody else is eligible)."""
        silent = ticket.technician_id
        if silent is not None and silent not in ticket.passed_over:
            ticket.passed_over = [*ticket.passed_over, silent]
        waited = self.ack_within(ticket.severity)
        detail = {"technician": silent, "step": ticket.escalation_step + 1, "waited": str(waited)}
        event = record(session, ticket, now, "escalated", "escalation", detail)
        if ticket.escalation_step < self._settings.escalation.handoffs:
            ticket.escalation_step += 1
            decision = self.decide(session, ticket, now)
            if decision.technician_id is not None:
                previous = session.get(Technician, silent) if silent else None
                self.dispatch(session, ticket, now)
                if previous is not None:
                    send_job_cancelled(
                        session, ticket, event, now, previous, "not acknowledged in time"
                    )
                return
        ticket.escalation_step = self._settings.escalation.handoffs + 1
        contact: ContactSettings | None = self._settings.escalation.supervisor
        contact_id = "supervisor"
        if contact is None:
            contact, contact_id = self._settings.dispatcher, "dispatcher"
        to_person = record(
            session,
            ticket,
            now,
            "escalated_to_supervisor",
            "escalation",
            {"technician": silent, "contact": contact.name if contact else None},
        )
        if contact is not None:
            reason = f"nobody acknowledged job #{ticket.id}; {silent or 'nobody'} still has it"
            send_dispatcher_alert(session, ticket, to_person, now, contact, contact_id, reason)
        log.warning("ticket %s escalated to a person: no technician acknowledged", ticket.id)

    def _auto_close(self, session: Session, now: datetime) -> int:
        if self._settings.on_alert_cleared != "auto_close":
            return 0
        # A fault held as flapping has not cleared: its alert is open (and not announced,
        # so ticketing never heard it come back); wait until it settles.
        flapping = exists().where(
            Alert.subject == Ticket.device_id,
            Alert.open_fingerprint.is_not(None),
            Alert.state == "flapping",
        )
        ids = session.scalars(
            select(Ticket.id)
            .where(
                Ticket.cleared_at <= now - self._settings.cleared_grace,
                Ticket.status.in_(NOT_STARTED),
                Ticket.open_fingerprint.is_not(None),
                ~flapping,
            )
            .order_by(Ticket.id)
            .limit(SWEEP_BATCH)
        ).all()
        done = 0
        for ticket_id in ids:
            claim = (
                update(Ticket)
                .where(Ticket.id == ticket_id, Ticket.cleared_at.is_not(None))
                .values(cleared_at=None)
            )
            if not _compare_and_set(session, claim):
                continue
            ticket = session.get(Ticket, ticket_id, populate_existing=True)
            assert ticket is not None
            technician = (
                session.get(Technician, ticket.technician_id) if ticket.technician_id else None
            )
            ticket.closure_code = "cleared_before_visit"
            event = apply(
                session,
                ticket,
                "close",
                actor="sweep",
                now=now,
                detail={"reason": "the fault cleared and stayed cleared; nobody had set out"},
                kind="auto_closed",
            )
            if technician is not None:
                send_job_cancelled(
                    session, ticket, event, now, technician, "the fault cleared by itself"
                )
            send_resolved(session, ticket, event, now, survey=False)
            done += 1
        return done

    def _close_resolved(self, session: Session, now: datetime) -> int:
        tickets = session.scalars(
            select(Ticket)
            .where(
                Ticket.status.in_(("resolved", "no_fault_found")),
                Ticket.resolved_at <= now - self._settings.reopen_within,
            )
            .order_by(Ticket.id)
            .limit(SWEEP_BATCH)
        ).all()
        for ticket in tickets:
            apply(
                session,
                ticket,
                "close",
                actor="sweep",
                now=now,
                detail={"reason": "the reopen window passed without a recurrence"},
            )
        return len(tickets)


def _compare_and_set(session: Session, statement: Update) -> bool:
    """Run a conditional UPDATE; True if it matched exactly one row (we own the change)."""
    result = session.execute(statement.execution_options(synchronize_session=False))
    return bool(cast(CursorResult[Any], result).rowcount == 1)


def candidates(session: Session, *, ignore_ticket: int | None = None) -> list[Candidate]:
    """Every technician with their current load (open tickets assigned to them)."""
    query = (
        select(Ticket.technician_id, func.count())
        .where(Ticket.open_fingerprint.is_not(None), Ticket.technician_id.is_not(None))
        .group_by(Ticket.technician_id)
    )
    if ignore_ticket is not None:
        query = query.where(Ticket.id != ignore_ticket)
    load = {technician: int(count) for technician, count in session.execute(query).all()}
    return [
        candidate(t, load.get(t.id, 0))
        for t in session.scalars(select(Technician).order_by(Technician.id))
    ]


def candidate(technician: Technician, open_jobs: int) -> Candidate:
    """A technician as dispatch weighs them, with their current load."""
    t = technician
    return Candidate(
        id=t.id,
        name=t.name,
        skills=frozenset(t.skills),
        regions=frozenset(t.regions),
        max_jobs=t.max_jobs,
        open_jobs=int(open_jobs),
        lat=t.lat,
        lon=t.lon,
        active=t.active,
        schedule=schedule_from(t.timezone, t.shifts or [], t.days_off or []),
        radius_km=t.radius_km,
    )
