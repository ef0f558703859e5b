"""Opening and updating tickets from alerts; every change is a ``ticket_events`` row.

One open repair ticket per device: a second alert on a device whose ticket is open is
attached to it (the technician already on the job needs no second work order). The
``open_fingerprint`` unique column makes this hold under concurrent workers: the loser of
a race gets an IntegrityError inside a savepoint and attaches instead.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forewarn.config.schema import TicketingSettings
from forewarn.notifier.outbox import customer_recipient, notify, technician_recipient
from forewarn.store.models import (
    Alert,
    Customer,
    Device,
    Reading,
    Site,
    Technician,
    Ticket,
    TicketEvent,
)
from forewarn.ticketing.dispatch import Candidate, Job, choose_technician

log = logging.getLogger(__name__)

OPEN_STATUSES = ("open", "assigned", "accepted", "en_route", "on_site")
PRIORITY_OF = {"critical": "P1", "major": "P2", "minor": "P3", "info": "P4"}


class Ticketing:
    """Turns firing alerts into work orders, dispatches them and queues the notices.

    Implements the monitors' ``AlertSink``: called inside the alert's transaction.
    """

    def __init__(self, settings: TicketingSettings) -> None:
        self._settings = settings

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
        site = session.get(Site, device.site_id)
        assert site is not None
        ticket = Ticket(
            kind="repair",
            fingerprint=fingerprint,
            open_fingerprint=fingerprint,
            status="open",
            priority=PRIORITY_OF.get(alert.severity, "P3"),
            title=f"{device.model} {device.id} at {site.name}: {alert.summary}",
            device_id=device.id,
            site_id=site.id,
            customer_id=site.customer_id,
            fault=alert.summary,
            suggested_fix=alert.suggested_fix,
            alert_count=1,
            opened_at=now,
            updated_at=now,
            sla_due_at=now + self._sla(alert.severity),
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
        opened = self._event(
            session,
            ticket,
            now,
            "opened",
            "monitor",
            None,
            "open",
            {"alert_id": alert.id, "rule": alert.rule_id},
        )
        self._dispatch(session, ticket, device, site, alert, now, opened)

    def _sla(self, severity: str) -> timedelta:
        for level, due in self._settings.sla.items():
            if level == severity:
                return due
        return self._settings.sla.get("major", timedelta(days=1))

    def alert_resolved(self, session: Session, alert: Alert, now: datetime) -> None:
        if alert.ticket_id is None:
            return
        ticket = session.get(Ticket, alert.ticket_id)
        if ticket is None or ticket.open_fingerprint is None:
            return
        self._event(
            session,
            ticket,
            now,
            "alert_cleared",
            "monitor",
            ticket.status,
            ticket.status,
            {"alert_id": alert.id, "summary": alert.summary},
        )

    def _attach(self, session: Session, ticket: Ticket, alert: Alert, now: datetime) -> None:
        alert.ticket_id = ticket.id
        ticket.alert_count += 1
        ticket.updated_at = now
        self._event(
            session,
            ticket,
            now,
            "alert_attached",
            "monitor",
            ticket.status,
            ticket.status,
            {"alert_id": alert.id, "rule": alert.rule_id, "summary": alert.summary},
        )

    def _dispatch(
        self,
        session: Session,
        ticket: Ticket,
        device: Device,
        site: Site,
        alert: Alert,
        now: datetime,
        opened: TicketEvent,
    ) -> None:
        decision = choose_technician(
            Job(
                skill=device.kind,
                region=site.region,
                priority=alert.severity,
                lat=site.lat,
                lon=site.lon,
            ),
            _candidates(session),
        )
        ticket.dispatch = decision.record()
        customer = session.get(Customer, site.customer_id)
        technician = (
            session.get(Technician, decision.technician_id) if decision.technician_id else None
        )
        context = _context(session, ticket, device, site, customer, technician, alert)
        critical = alert.severity == "critical"
        if technician is None:
            event = self._event(
                session,
                ticket,
                now,
                "queued_for_dispatcher",
                "dispatch",
                "open",
                "open",
                decision.record(),
            )
        else:
            ticket.technician_id = technician.id
            ticket.status = "assigned"
            event = self._event(
                session, ticket, now, "assigned", "dispatch", "open", "assigned", decision.record()
            )
            notify(
                session,
                key=f"ticket-event:{event.id}",
                event="work_order",
                recipient=technician_recipient(technician),
                context=context,
                now=now,
                ticket_id=ticket.id,
                critical=critical,
            )
        if customer is not None:
            notify(
                session,
                key=f"ticket-event:{opened.id}",
                event="fault_notice",
                recipient=customer_recipient(customer),
                context=context,
                now=now,
                ticket_id=ticket.id,
                critical=critical,
            )
        log.info("ticket %s opened for %s: %s", ticket.id, device.id, decision.reason)

    def _event(
        self,
        session: Session,
        ticket: Ticket,
        now: datetime,
        kind: str,
        actor: str,
        from_status: str | None,
        to_status: str | None,
        detail: dict[str, Any],
    ) -> TicketEvent:
        event = TicketEvent(
            ticket_id=ticket.id,
            at=now,
            kind=kind,
            actor=actor,
            from_status=from_status,
            to_status=to_status,
            detail=detail,
        )
        session.add(event)
        session.flush()
        return event


def _candidates(session: Session) -> list[Candidate]:
    rows = session.execute(
        select(Ticket.technician_id, func.count())
        .where(Ticket.open_fingerprint.is_not(None), Ticket.technician_id.is_not(None))
        .group_by(Ticket.technician_id)
    ).all()
    load = {technician: int(count) for technician, count in rows}
    return [
        Candidate(
            id=t.id,
            name=t.name,
            skills=frozenset(t.skills),
            regions=frozenset(t.regions),
            max_jobs=t.max_jobs,
            open_jobs=int(load.get(t.id, 0)),
            lat=t.lat,
            lon=t.lon,
            active=t.active,
        )
        for t in session.scalars(select(Technician).order_by(Technician.id))
    ]


def _context(
    session: Session,
    ticket: Ticket,
    device: Device,
    site: Site,
    customer: Customer | None,
    technician: Technician | None,
    alert: Alert,
) -> dict[str, Any]:
    """Everything the templates need, frozen at the time of the event.

    Street address and serial go only to email templates: SMS bodies never carry them.
    """
    recent = session.execute(
        select(Reading.metric, Reading.value, Reading.code, Reading.ts)
        .where(Reading.device_id == device.id)
        .order_by(Reading.ts.desc())
        .limit(12)
    ).all()
    return {
        "ticket": {
            "id": ticket.id,
            "priority": ticket.priority,
            "fault": ticket.fault,
            "suggested_fix": ticket.suggested_fix,
            "sla_due": ticket.sla_due_at.isoformat() if ticket.sla_due_at else None,
            "opened": ticket.opened_at.isoformat(),
        },
        "alert": {
            "rule": alert.rule_id,
            "rule_version": alert.rule_version,
            "severity": alert.severity,
            "summary": alert.summary,
            "evidence": alert.evidence,
        },
        "device": {
            "id": device.id,
            "model": device.model,
            "kind": device.kind,
            "serial": device.serial,
        },
        "site": {
            "id": site.id,
            "name": site.name,
            "address": site.address,
            "region": site.region,
            "timezone": site.timezone,
        },
        "customer": {
            "name": customer.name if customer else "",
            "phone": customer.phone if customer else None,
            "email": customer.email if customer else None,
        },
        "technician": {"id": technician.id, "name": technician.name} if technician else None,
        "recent_readings": [
            {"metric": m, "value": v, "code": c, "ts": ts.isoformat()} for m, v, c, ts in recent
        ],
    }
