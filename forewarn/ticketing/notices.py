"""Which messages each ticket event causes, queued in the outbox in the event's transaction.

Every notice is keyed by the ticket event that caused it (``ticket-event:<id>``), and the
outbox's unique dedupe key (cause + recipient + channel) makes a retried event queue
nothing twice. An event row is written once per transition, so each event notifies once.

=====================  ===========================  ==========================================
event                  template                     to
=====================  ===========================  ==========================================
opened                 ``fault_notice``             customer (first usable channel)
assigned / reassigned  ``work_order``               the technician (every channel)
accepted               ``technician_assigned``      customer, with the visit window
resolved / no fault    ``ticket_resolved``          customer, then ``satisfaction_survey``
                                                    :data:`SURVEY_DELAY` later
auto-closed, cancelled ``ticket_resolved``          customer (the all-clear, no survey)
taken away             ``job_cancelled``            the technician who had the job
no eligible technician ``dispatcher_alert``         the dispatcher contact
escalated to a person  ``dispatcher_alert``         the supervisor (else the dispatcher)
=====================  ===========================  ==========================================

Every context carries the same keys, so any template may use any of them (templates render
with ``StrictUndefined``). Variable names are a contract with the translated templates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from forewarn.config.schema import ContactSettings
from forewarn.notifier.outbox import (
    Recipient,
    customer_recipient,
    notify,
    technician_recipient,
)
from forewarn.ports import AlertRecord, TicketEventRecord, TicketRecord
from forewarn.store.models import (
    Alert,
    Customer,
    Device,
    Reading,
    Site,
    Technician,
    Ticket,
)
from forewarn.ticketing.shifts import next_on_duty, schedule_from

SURVEY_DELAY = timedelta(hours=1)
"""The survey follows the all-clear after this long, not in the same minute."""
RECENT_READINGS = 12
EARLIER_TICKETS = 5


def ticket_context(
    session: Session,
    ticket: Ticket,
    *,
    technician: Technician | None = None,
    alert: Alert | None = None,
    visit: dict[str, str | None] | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """Everything the templates need, frozen at the time of the event.

    Street address and serial go only to email templates: SMS bodies never carry them.
    """
    device = session.get(Device, ticket.device_id) if ticket.device_id else None
    site = session.get(Site, ticket.site_id) if ticket.site_id else None
    customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    if technician is None and ticket.technician_id:
        technician = session.get(Technician, ticket.technician_id)
    if alert is None:
        alert = session.scalar(
            select(Alert).where(Alert.ticket_id == ticket.id).order_by(Alert.id.desc()).limit(1)
        )
    return context_of(
        ticket,
        device=device,
        site=site,
        customer=customer,
        technician=technician,
        alert=alert,
        recent_readings=_recent_readings(session, ticket.device_id),
        earlier_tickets=_earlier_tickets(session, ticket),
        forecast=_forecast(session, ticket),
        visit=visit,
        reason=reason,
    )


def context_of(
    ticket: Ticket | TicketRecord,
    *,
    device: Device | None,
    site: Site | None,
    customer: Customer | None,
    technician: Technician | None,
    alert: Alert | AlertRecord | None,
    recent_readings: list[dict[str, Any]],
    earlier_tickets: list[dict[str, Any]],
    forecast: dict[str, Any] | None,
    visit: dict[str, str | None] | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """:func:`ticket_context` from what is already loaded (pure): a storm builds
    thousands of these from a few set-based reads."""
    return {
        "ticket": {
            "id": ticket.id,
            "kind": ticket.kind,
            "status": ticket.status,
            "priority": ticket.priority,
            "severity": ticket.severity,
            "fault": ticket.fault,
            "suggested_fix": ticket.suggested_fix,
            "sla_due": ticket.sla_due_at.isoformat() if ticket.sla_due_at else None,
            "opened": ticket.opened_at.isoformat(),
            "repeat_visits": ticket.repeat_visits,
            "previous_ticket": ticket.previous_ticket_id,
            "closure_code": ticket.closure_code,
            "resolution_note": ticket.resolution_note,
        },
        "alert": {
            "rule": alert.rule_id if alert else ticket.rule_id or "",
            "rule_version": alert.rule_version if alert else "",
            "severity": alert.severity if alert else ticket.severity,
            "summary": alert.summary if alert else ticket.fault,
            "evidence": dict(alert.evidence or {}) if alert else {},
        },
        "device": {
            "id": device.id if device else "",
            "model": device.model if device else "",
            "kind": device.kind if device else "",
            "serial": device.serial if device else "",
        },
        "site": {
            "id": site.id if site else "",
            "name": site.name if site else "",
            "address": site.address if site else "",
            "region": site.region if site else "",
            "timezone": site.timezone if site else "UTC",
        },
        "customer": {
            "name": customer.name if customer else "",
            "phone": customer.phone if customer else None,
            "email": customer.email if customer else None,
        },
        "technician": (
            {"id": technician.id, "name": technician.name, "phone": technician.phone}
            if technician
            else None
        ),
        "recent_readings": recent_readings,
        "earlier_tickets": earlier_tickets,
        "visit": visit or {"start": None, "end": None},
        "reason": reason,
        "forecast": forecast,
    }


def _forecast(session: Session, ticket: Ticket) -> dict[str, Any] | None:
    return forecast_of(
        session.scalars(
            select(Alert.evidence).where(Alert.ticket_id == ticket.id).order_by(Alert.id.desc())
        )
    )


def forecast_of(evidences: Iterable[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """When a time-to-limit rule behind the ticket expects its limit to be reached, as the
    notices say it ("expected to reach 95 °C in about 4 h"), from its alerts' evidence,
    newest first; None if no forecast."""
    for evidence in evidences:
        found = (evidence or {}).get("forecast")
        if isinstance(found, dict) and found.get("limit") is not None:
            unit = found.get("unit") or ""
            return {
                "level": f"{found['limit']:g}" + (f" {unit}" if unit else ""),
                "hours": found.get("hours"),
                "minutes": found.get("minutes"),
            }
    return None


def _recent_readings(session: Session, device_id: str | None) -> list[dict[str, Any]]:
    if device_id is None:
        return []
    rows = session.execute(
        select(Reading.metric, Reading.value, Reading.code, Reading.ts)
        .where(Reading.device_id == device_id)
        .order_by(Reading.ts.desc())
        .limit(RECENT_READINGS)
    ).all()
    return [reading_context(m, v, c, ts) for m, v, c, ts in rows]


def reading_context(
    metric: str, value: float | None, code: str | None, ts: datetime
) -> dict[str, Any]:
    """One of a context's ``recent_readings``."""
    return {"metric": metric, "value": value, "code": code, "ts": ts.isoformat()}


def earlier_context(ticket: Ticket | TicketRecord) -> dict[str, Any]:
    """One of a context's ``earlier_tickets``."""
    return {
        "id": ticket.id,
        "opened": ticket.opened_at.isoformat(),
        "status": ticket.status,
        "fault": ticket.fault,
        "closure_code": ticket.closure_code,
        "resolution_note": ticket.resolution_note,
    }


def _earlier_tickets(session: Session, ticket: Ticket) -> list[dict[str, Any]]:
    if ticket.device_id is None:
        return []
    rows = session.scalars(
        select(Ticket)
        .where(Ticket.device_id == ticket.device_id, Ticket.id != ticket.id)
        .order_by(Ticket.opened_at.desc(), Ticket.id.desc())
        .limit(EARLIER_TICKETS)
    )
    return [earlier_context(t) for t in rows]


def _key(event: TicketEventRecord) -> str:
    return f"ticket-event:{event.id}"


def _critical(ticket: Ticket) -> bool:
    return ticket.severity == "critical"


def send_work_order(
    session: Session,
    ticket: Ticket,
    event: TicketEventRecord,
    now: datetime,
    technician: Technician,
) -> None:
    context = ticket_context(session, ticket, technician=technician)
    notify(
        session,
        key=_key(event),
        event="work_order",
        recipient=technician_recipient(technician),
        context=context,
        now=now,
        ticket_id=ticket.id,
        critical=_critical(ticket),
    )


def send_fault_notice(
    session: Session, ticket: Ticket, event: TicketEventRecord, now: datetime
) -> None:
    customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    if customer is None:
        return
    notify(
        session,
        key=_key(event),
        event="fault_notice",
        recipient=customer_recipient(customer),
        context=ticket_context(session, ticket),
        now=now,
        ticket_id=ticket.id,
        critical=_critical(ticket),
    )


def send_technician_assigned(
    session: Session,
    ticket: Ticket,
    event: TicketEventRecord,
    now: datetime,
    technician: Technician,
) -> None:
    """The customer learns who is coming and when: from the technician's next shift (or
    now) until the SLA due time."""
    customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    if customer is None:
        return
    schedule = schedule_from(technician.timezone, technician.shifts, technician.days_off)
    start = next_on_duty(schedule, now) or now
    if ticket.sla_due_at is not None and start > ticket.sla_due_at:
        start = now
    visit = {
        "start": start.isoformat(),
        "end": ticket.sla_due_at.isoformat() if ticket.sla_due_at else None,
    }
    notify(
        session,
        key=_key(event),
        event="technician_assigned",
        recipient=customer_recipient(customer),
        context=ticket_context(session, ticket, technician=technician, visit=visit),
        now=now,
        ticket_id=ticket.id,
        critical=_critical(ticket),
    )


def send_resolved(
    session: Session, ticket: Ticket, event: TicketEventRecord, now: datetime, *, survey: bool
) -> None:
    """The all-clear to the customer and, after a visit, the satisfaction survey."""
    customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    if customer is None:
        return
    recipient = customer_recipient(customer)
    context = ticket_context(session, ticket)
    notify(
        session,
        key=_key(event),
        event="ticket_resolved",
        recipient=recipient,
        context=context,
        now=now,
        ticket_id=ticket.id,
    )
    if survey:
        notify(
            session,
            key=f"{_key(event)}:survey",
            event="satisfaction_survey",
            recipient=recipient,
            context=context,
            now=now,
            ticket_id=ticket.id,
            earliest=now + SURVEY_DELAY,
        )


def send_job_cancelled(
    session: Session,
    ticket: Ticket,
    event: TicketEventRecord,
    now: datetime,
    technician: Technician,
    reason: str,
) -> None:
    """The technician who had the job must not go: it was closed or handed to someone else."""
    notify(
        session,
        key=_key(event),
        event="job_cancelled",
        recipient=technician_recipient(technician),
        context=ticket_context(session, ticket, technician=technician, reason=reason),
        now=now,
        ticket_id=ticket.id,
    )


def send_dispatcher_alert(
    session: Session,
    ticket: Ticket,
    event: TicketEventRecord,
    now: datetime,
    contact: ContactSettings,
    contact_id: str,
    reason: str,
) -> None:
    """A person must act on the ticket: nobody eligible, or nobody answered."""
    recipient = dispatcher_recipient(contact, contact_id)
    notify(
        session,
        key=_key(event),
        event="dispatcher_alert",
        recipient=recipient,
        context=ticket_context(session, ticket, reason=reason),
        now=now,
        ticket_id=ticket.id,
        # A job nobody owns is exactly what must not wait for the morning.
        critical=True,
    )


def dispatcher_recipient(contact: ContactSettings, contact_id: str) -> Recipient:
    """The dispatcher (or supervisor) as a recipient: every channel they have."""
    addresses = {"sms": contact.phone, "email": contact.email}
    return Recipient(
        role="dispatcher",
        id=contact_id,
        name=contact.name,
        locale=contact.locale,
        timezone=contact.timezone,
        addresses={k: v for k, v in addresses.items() if v},
        channels=contact.channels,
        every_channel=True,
    )


def example_ticket_context() -> dict[str, Any]:
    """The keys :func:`ticket_context` adds to the notifier's example context, for
    ``forewarn check`` (merged over ``forewarn.notifier.examples.example_context``)."""
    return {
        "ticket": {
            "id": 1042,
            "kind": "repair",
            "status": "assigned",
            "priority": "P2",
            "severity": "major",
            "fault": "temperature 81.5 > 75 for 10m",
            "suggested_fix": "Check the cooling fan and clear the air intake.",
            "sla_due": "2026-11-26T09:00:00+00:00",
            "opened": "2026-11-25T09:00:00+00:00",
            "repeat_visits": 1,
            "previous_ticket": 980,
            "closure_code": "fixed",
            "resolution_note": "Replaced the cooling fan.",
        },
        "technician": {"id": "t-ana", "name": "Ana Costa", "phone": "+351913000201"},
        "earlier_tickets": [
            {
                "id": 980,
                "opened": "2026-10-02T14:00:00+00:00",
                "status": "closed",
                "fault": "temperature 79.0 > 75 for 10m",
                "closure_code": "fixed",
                "resolution_note": "Cleaned the air intake.",
            }
        ],
        "visit": {"start": "2026-11-25T09:30:00+00:00", "end": "2026-11-26T09:00:00+00:00"},
        "reason": "no eligible technician: sent to the dispatcher queue",
        "forecast": {"level": "95 °C", "hours": 4, "minutes": None},
    }
