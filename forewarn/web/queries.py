"""The console's reads: counts are single grouped queries, lists are one page of rows.

Nothing here loads a whole table: counts use ``COUNT ... GROUP BY`` and every list has a
``LIMIT``, so the console stays fast with a fleet of a million devices.

"Open" means what the store promises: an alert or a ticket is open while its
``open_fingerprint`` is set (the column that keeps one open per fingerprint).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    LargeBinary,
    Select,
    SQLColumnExpression,
    case,
    func,
    select,
)
from sqlalchemy.orm import Session

from forewarn.notifier.privacy import mask_address, scrub
from forewarn.store.care import Conversation
from forewarn.store.models import (
    Alert,
    AlertEvent,
    Customer,
    Device,
    Notification,
    Quarantine,
    Site,
    Technician,
    Ticket,
    TicketEvent,
)
from forewarn.web.redaction import known_addresses, redact
from forewarn.web.resources import (
    AlertDetail,
    AlertEventOut,
    AlertList,
    AlertOut,
    DeviceList,
    DeviceOut,
    DeviceState,
    NotificationList,
    NotificationOut,
    NotificationWithBody,
    Overview,
    QuarantineList,
    QuarantineOut,
    TicketDetail,
    TicketEventOut,
    TicketList,
    TicketOut,
)

AlertShow = Literal["open", "resolved", "all"]
TicketShow = Literal["open", "closed", "all"]
DeviceShow = Literal["all", "reporting", "silent"]

SEVERITIES = ("critical", "major", "minor", "info")
PREVIEW_BYTES = 600
"""Bytes of a quarantined payload read for its preview; the rest stays in the database."""
PREVIEW_CHARS = 240


def _rank(column: SQLColumnExpression[str]) -> ColumnElement[int]:
    """Critical first; unknown values last, so a new severity still shows."""
    return case({name: i for i, name in enumerate(SEVERITIES)}, value=column, else_=len(SEVERITIES))


def _device_state(cutoff: datetime) -> ColumnElement[str]:
    # A device that never spoke (NULL last_seen_at) counts as silent.
    return case((Device.last_seen_at >= cutoff, "reporting"), else_="silent")


def _record(value: object) -> dict[str, Any]:
    """A JSON column as a mapping, whatever an older or buggy writer left in it."""
    if isinstance(value, dict):
        return value
    return {} if value is None else {"value": value}


def _count(session: Session, query: Select[int]) -> int:
    return int(session.execute(query).scalar_one())


def _grouped(session: Session, query: Select[str, int]) -> dict[str, int]:
    return {str(key): int(n) for key, n in session.execute(query)}


# -- counts ---------------------------------------------------------------------------------


def device_states(session: Session, now: datetime, silent_after: timedelta) -> dict[str, int]:
    """``{"reporting": n, "silent": m}`` (both keys always present)."""
    state = _device_state(now - silent_after)
    counts = _grouped(session, select(state, func.count()).group_by(state))
    return {"reporting": counts.get("reporting", 0), "silent": counts.get("silent", 0)}


def open_alerts_by_severity(session: Session) -> dict[str, int]:
    """Open alerts per severity; every known severity is present, zero or not."""
    query = (
        select(Alert.severity, func.count())
        .where(Alert.open_fingerprint.is_not(None))
        .group_by(Alert.severity)
    )
    return dict.fromkeys(SEVERITIES, 0) | _grouped(session, query)


def open_tickets_by_status(session: Session) -> dict[str, int]:
    """Open tickets per status; only statuses that have some."""
    query = (
        select(Ticket.status, func.count())
        .where(Ticket.open_fingerprint.is_not(None))
        .group_by(Ticket.status)
    )
    return _grouped(session, query)


def notifications_by_status(session: Session, since: datetime | None = None) -> dict[str, int]:
    """Notifications per status, all of them or those created at ``since`` or later."""
    query = select(Notification.status, func.count()).group_by(Notification.status)
    if since is not None:
        query = query.where(Notification.created_at >= since)
    return _grouped(session, query)


def quarantined(session: Session, since: datetime | None = None) -> int:
    """Quarantined inputs, all of them or those received at ``since`` or later."""
    query = select(func.count()).select_from(Quarantine)
    if since is not None:
        query = query.where(Quarantine.received_at >= since)
    return _count(session, query)


def overview(session: Session, now: datetime, silent_after: timedelta) -> Overview:
    """The dashboard's counts as of ``now``."""
    states = device_states(session, now, silent_after)
    firing = _count(
        session,
        select(func.count()).select_from(Alert).where(Alert.state == "firing"),
    )
    day_ago = now - timedelta(hours=24)
    return Overview(
        now=now,
        silent_after_seconds=silent_after.total_seconds(),
        devices_total=states["reporting"] + states["silent"],
        devices_reporting=states["reporting"],
        devices_silent=states["silent"],
        alerts_open=open_alerts_by_severity(session),
        alerts_firing=firing,
        tickets_open=open_tickets_by_status(session),
        notifications_24h=notifications_by_status(session, since=day_ago),
        quarantined_24h=quarantined(session, since=day_ago),
    )


# -- devices --------------------------------------------------------------------------------


def device_page(
    session: Session,
    now: datetime,
    silent_after: timedelta,
    *,
    show: DeviceShow = "all",
    offset: int = 0,
    limit: int = 100,
) -> DeviceList:
    """Devices with the most open alerts first, then the silent ones, then by id."""
    state = _device_state(now - silent_after)
    alerts = (
        select(Alert.subject, func.count().label("n"))
        .where(Alert.open_fingerprint.is_not(None))
        .group_by(Alert.subject)
        .subquery()
    )
    open_alerts = func.coalesce(alerts.c.n, 0)
    query = (
        select(Device, Site.name, state, open_alerts)
        .join(Site, Site.id == Device.site_id, isouter=True)
        .join(alerts, alerts.c.subject == Device.id, isouter=True)
    )
    total = select(func.count()).select_from(Device)
    if show != "all":
        query = query.where(state == show)
        total = total.where(state == show)
    query = query.order_by(open_alerts.desc(), state.desc(), Device.id).offset(offset).limit(limit)
    items = [
        DeviceOut(
            id=device.id,
            site_id=device.site_id,
            site_name=site_name or device.site_id,
            model=device.model,
            kind=device.kind,
            last_seen_at=device.last_seen_at,
            state=_as_state(device_state),
            open_alerts=int(n),
        )
        for device, site_name, device_state, n in session.execute(query)
    ]
    return DeviceList(total=_count(session, total), offset=offset, limit=limit, items=items)


def _as_state(value: str) -> DeviceState:
    return "reporting" if value == "reporting" else "silent"


# -- alerts ---------------------------------------------------------------------------------


def _devices_among(session: Session, subjects: Iterable[str]) -> set[str]:
    wanted = sorted(set(subjects))
    if not wanted:
        return set()
    return set(session.scalars(select(Device.id).where(Device.id.in_(wanted))))


def _alert_out(alert: Alert, devices: set[str] | None = None) -> AlertOut:
    return AlertOut(
        subject_is_device=devices is not None and alert.subject in devices,
        id=alert.id,
        rule_id=alert.rule_id,
        rule_version=alert.rule_version,
        subject=alert.subject,
        state=alert.state,
        severity=alert.severity,
        summary=alert.summary,
        suggested_fix=alert.suggested_fix,
        since=alert.firing_since or alert.pending_since,
        pending_since=alert.pending_since,
        firing_since=alert.firing_since,
        resolved_at=alert.resolved_at,
        last_value=alert.last_value,
        ticket_id=alert.ticket_id,
        open=alert.open_fingerprint is not None,
        acknowledged_at=alert.acknowledged_at,
        acknowledged_by=alert.acknowledged_by,
        held=held_reason(alert.suppressed_by)
        if alert.open_fingerprint is not None and alert.notified_at is None
        else None,
    )


def held_reason(reason: str | None) -> str | None:
    """A suppression reason as ops read it."""
    if reason is None:
        return None
    kind, _, detail = reason.partition(":")
    words = {
        "confirmation": "waiting for confirmation by {}",
        "silence": "silenced by {}",
        "inhibited": "inhibited by {}",
        "work_order": "attached to ticket #{}",
    }
    if kind in words and detail:
        return words[kind].format(detail)
    return reason


def alert_page(
    session: Session, *, show: AlertShow = "open", offset: int = 0, limit: int = 100
) -> AlertList:
    """Open alerts: firing first, then by severity, newest first; resolved: newest first."""
    query = select(Alert)
    total = select(func.count()).select_from(Alert)
    if show == "open":
        condition = Alert.open_fingerprint.is_not(None)
        query = query.where(condition).order_by(
            case((Alert.state == "firing", 0), else_=1),
            _rank(Alert.severity),
            func.coalesce(Alert.firing_since, Alert.pending_since).desc(),
            Alert.id.desc(),
        )
        total = total.where(condition)
    elif show == "resolved":
        condition = Alert.open_fingerprint.is_(None)
        query = query.where(condition).order_by(Alert.resolved_at.desc(), Alert.id.desc())
        total = total.where(condition)
    else:
        query = query.order_by(Alert.id.desc())
    rows = session.execute(query.offset(offset).limit(limit)).scalars().all()
    devices = _devices_among(session, (a.subject for a in rows))
    return AlertList(
        total=_count(session, total),
        offset=offset,
        limit=limit,
        items=[_alert_out(alert, devices) for alert in rows],
    )


def alert_detail(session: Session, alert_id: int) -> AlertDetail | None:
    """The alert and every state change it went through, with the evidence of each."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        return None
    events = session.execute(
        select(AlertEvent)
        .where(AlertEvent.alert_id == alert_id)
        .order_by(AlertEvent.at, AlertEvent.id)
    ).scalars()
    return AlertDetail(
        **_alert_out(alert, _devices_among(session, [alert.subject])).model_dump(),
        evidence=_record(alert.evidence),
        events=[
            AlertEventOut(
                id=e.id,
                at=e.at,
                from_state=e.from_state,
                to_state=e.to_state,
                rule_version=e.rule_version,
                evidence=_record(e.evidence),
            )
            for e in events
        ],
    )


# -- tickets --------------------------------------------------------------------------------


def _ticket_query() -> Select[Ticket, str | None, str | None, str | None]:
    return (
        select(Ticket, Site.name, Customer.name, Technician.name)
        .join(Site, Site.id == Ticket.site_id, isouter=True)
        .join(Customer, Customer.id == Ticket.customer_id, isouter=True)
        .join(Technician, Technician.id == Ticket.technician_id, isouter=True)
    )


def _ticket_fields(
    ticket: Ticket, site: str | None, customer: str | None, technician: str | None
) -> dict[str, object]:
    return {
        "id": ticket.id,
        "kind": ticket.kind,
        "status": ticket.status,
        "priority": ticket.priority,
        "title": ticket.title,
        "device_id": ticket.device_id,
        "site_id": ticket.site_id,
        "site_name": site,
        "customer_id": ticket.customer_id,
        "customer_name": customer,
        "technician_id": ticket.technician_id,
        "technician_name": technician,
        "alert_count": ticket.alert_count,
        "opened_at": ticket.opened_at,
        "updated_at": ticket.updated_at,
        "sla_due_at": ticket.sla_due_at,
        "closed_at": ticket.closed_at,
    }


def ticket_page(
    session: Session,
    *,
    show: TicketShow = "open",
    offset: int = 0,
    limit: int = 100,
    technician: str | None = None,
) -> TicketList:
    """Open tickets by priority, the nearest SLA first; closed ones most recent first.
    With ``technician``, only the tickets assigned to them."""
    query = _ticket_query()
    total = select(func.count()).select_from(Ticket)
    if technician is not None:
        query = query.where(Ticket.technician_id == technician)
        total = total.where(Ticket.technician_id == technician)
    if show == "open":
        condition = Ticket.open_fingerprint.is_not(None)
        query = query.where(condition).order_by(
            _rank(Ticket.priority),
            Ticket.sla_due_at.is_(None),
            Ticket.sla_due_at,
            Ticket.id,
        )
        total = total.where(condition)
    elif show == "closed":
        condition = Ticket.open_fingerprint.is_(None)
        query = query.where(condition).order_by(Ticket.updated_at.desc(), Ticket.id.desc())
        total = total.where(condition)
    else:
        query = query.order_by(Ticket.id.desc())
    items = [
        TicketOut.model_validate(_ticket_fields(*row))
        for row in session.execute(query.offset(offset).limit(limit))
    ]
    return TicketList(total=_count(session, total), offset=offset, limit=limit, items=items)


def ticket_detail(
    session: Session, ticket_id: int, *, full_bodies: bool = True
) -> TicketDetail | None:
    """Everything about one ticket: who, why this technician, what happened, who was told.

    Without ``full_bodies`` (viewers, technicians) message subjects and bodies have phone
    numbers, emails and street addresses hidden.
    """
    row = session.execute(_ticket_query().where(Ticket.id == ticket_id)).first()
    if row is None:
        return None
    addresses = None if full_bodies else known_addresses(session, ticket_id, None)

    def shown(text: str | None) -> str | None:
        return text if addresses is None or text is None else redact(text, addresses)

    ticket = row[0]
    alerts = session.execute(
        select(Alert).where(Alert.ticket_id == ticket_id).order_by(Alert.pending_since, Alert.id)
    ).scalars()
    events = session.execute(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == ticket_id)
        .order_by(TicketEvent.at, TicketEvent.id)
    ).scalars()
    notifications = session.execute(
        select(Notification)
        .where(Notification.ticket_id == ticket_id)
        .order_by(Notification.created_at, Notification.id)
    ).scalars()
    return TicketDetail.model_validate(
        {
            **_ticket_fields(*row),
            "fault": ticket.fault,
            "suggested_fix": ticket.suggested_fix,
            "dispatch": _record(ticket.dispatch),
            "alerts": [_alert_out(alert) for alert in alerts],
            "events": [
                TicketEventOut(
                    id=e.id,
                    at=e.at,
                    kind=e.kind,
                    actor=e.actor,
                    from_status=e.from_status,
                    to_status=e.to_status,
                    detail=_record(e.detail),
                )
                for e in events
            ],
            "notifications": [
                NotificationWithBody(
                    **_notification_fields(n), subject=shown(n.subject), body=shown(n.body)
                )
                for n in notifications
            ],
        }
    )


def technician_names(session: Session, ids: Iterable[str]) -> dict[str, str]:
    """Names for the technician ids a dispatch record mentions."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.execute(select(Technician.id, Technician.name).where(Technician.id.in_(wanted)))
    return dict(rows.all())


# -- notifications --------------------------------------------------------------------------


def _notification_fields(n: Notification) -> dict[str, object]:
    return {
        "id": n.id,
        "ticket_id": n.ticket_id,
        "event": n.event,
        "recipient_role": n.recipient_role,
        "recipient_id": n.recipient_id,
        "channel": n.channel,
        "recipient": mask_address(n.address),
        "status": n.status,
        "critical": n.critical,
        "attempts": n.attempts,
        "provider": n.provider,
        "last_error": scrub(n.last_error) if n.last_error else None,
        "created_at": n.created_at,
        "sent_at": n.sent_at,
        "delivered_at": n.delivered_at,
    }


def notification_page(
    session: Session, *, status: str | None = None, offset: int = 0, limit: int = 100
) -> NotificationList:
    """The notification log, newest first, optionally of one status."""
    query = select(Notification).order_by(Notification.created_at.desc(), Notification.id.desc())
    total = select(func.count()).select_from(Notification)
    if status is not None:
        query = query.where(Notification.status == status)
        total = total.where(Notification.status == status)
    rows = session.execute(query.offset(offset).limit(limit)).scalars()
    return NotificationList(
        total=_count(session, total),
        offset=offset,
        limit=limit,
        items=[NotificationOut.model_validate(_notification_fields(n)) for n in rows],
    )


# -- quarantine -----------------------------------------------------------------------------


def quarantine_page(session: Session, *, offset: int = 0, limit: int = 100) -> QuarantineList:
    """Rejected inputs, newest first, with the start of each payload (never the whole)."""
    head = func.substr(Quarantine.payload, 1, PREVIEW_BYTES, type_=LargeBinary)
    size = func.length(Quarantine.payload)
    query = (
        select(
            Quarantine.id,
            Quarantine.received_at,
            Quarantine.source,
            Quarantine.origin,
            Quarantine.reason,
            size,
            head,
        )
        .order_by(Quarantine.received_at.desc(), Quarantine.id.desc())
        .offset(offset)
        .limit(limit)
    )
    items = [
        QuarantineOut(
            id=ident,
            received_at=received_at,
            source=source,
            origin=origin,
            reason=reason,
            size=int(n),
            preview=payload_preview(bytes(start or b""), int(n)),
        )
        for ident, received_at, source, origin, reason, n, start in session.execute(query)
    ]
    return QuarantineList(total=quarantined(session), offset=offset, limit=limit, items=items)


def payload_preview(start: bytes, size: int, limit: int = PREVIEW_CHARS) -> str:
    """A one-line, printable rendering of the start of a payload.

    Invalid UTF-8 and control characters are shown as escapes (``\\xff``, ``\\n``) so a
    hostile payload can neither break the page layout nor hide what it contained.
    """
    text = start.decode("utf-8", "backslashreplace")
    shown = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )
    cut = len(shown) > limit or size > len(start)
    return shown[:limit] + ("…" if cut else "")


def open_conversations(session: Session, now: datetime) -> dict[str, tuple[int, int]]:
    """Open conversations per queue: (open, late), late being past their due time (one
    query)."""
    late = case((Conversation.due_at <= now, 1), else_=0)
    rows = session.execute(
        select(Conversation.queue, func.count(), func.sum(late))
        .where(Conversation.status == "open")
        .group_by(Conversation.queue)
    ).all()
    return {queue: (int(n), int(overdue or 0)) for queue, n, overdue in rows}
