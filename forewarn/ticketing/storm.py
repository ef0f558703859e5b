"""Opening the tickets of many alerts in one pass: a storm costs a few statements, not
a dozen per alert.

When a sweep announces hundreds or thousands of alerts together (a regional outage),
:func:`open_tickets` does for all of them what :meth:`Ticketing.alert_fired
<forewarn.ticketing.tickets.Ticketing.alert_fired>` does for one, with the same rules:

1. what it reads, it reads once for the whole storm (devices, sites, customers, the
   tickets holding each episode, the latest ticket of each, technicians and their load);
2. the new tickets, their ``opened`` events, their dispatch events and their outbox rows
   are each written with one multi-row statement;
3. ONE dispatch pass gives the tickets out most severe first, counting every job it
   hands out as load, so the spread is what the tickets would get one after another (a
   technician reaching capacity mid-storm is skipped, not overfilled);
4. every message keeps its per-event dedupe key, so the outbox stays idempotent.

Alerts that need a decision about an existing ticket (the episode's ticket is open: the
alert attaches; it recurred within ``reopen_within``: the ticket reopens) go back to the
caller for the per-alert path, as does the whole storm when another worker opened one of
its tickets first (the insert is all or nothing, in a savepoint). Those are the rare
cases; the storm is the common one.

A new ticket has no message waiting in the outbox yet, so the per-event re-decision of
held notices (:meth:`~forewarn.ports.Outbox.follow`) has nothing to do here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from forewarn.notifier.outbox import customer_recipient, messages, technician_recipient
from forewarn.ports import (
    AlertRecord,
    NotificationRecord,
    TicketEventRecord,
    TicketExists,
    TicketRecord,
)
from forewarn.store import storm as store
from forewarn.store.models import Device, Site
from forewarn.ticketing.dispatch import Candidate, Decision, choose_technician
from forewarn.ticketing.notices import (
    EARLIER_TICKETS,
    RECENT_READINGS,
    context_of,
    dispatcher_recipient,
    earlier_context,
    forecast_of,
    reading_context,
)
from forewarn.ticketing.tickets import PRIORITY_OF, SEVERITY_RANK, Ticketing, candidate
from forewarn.ticketing.transitions import changes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Opened:
    """What :func:`open_tickets` did: the alerts it gave a ticket (as ticketing left
    them) and those left for the per-alert path."""

    done: list[AlertRecord]
    one_by_one: list[AlertRecord]


def open_tickets(
    ticketing: Ticketing, session: Session, alerts: Sequence[AlertRecord], now: datetime
) -> Opened:
    """Open, dispatch and announce a ticket for each alert with no ticket to join."""
    devices = store.devices(session, [a.subject for a in alerts])
    fingerprint = {a.id: f"repair:{a.subject}" for a in alerts}
    held = store.holding(session, fingerprint.values())
    latest = store.latest_tickets(session, [fp for fp in fingerprint.values() if fp not in held])
    fresh: list[AlertRecord] = []
    one_by_one: list[AlertRecord] = []
    seen: set[str] = set()
    for alert in alerts:
        fp = fingerprint[alert.id]
        if alert.subject not in devices:
            one_by_one.append(alert)  # the per-alert path logs it and opens nothing
        elif fp in held or fp in seen:
            one_by_one.append(alert)  # joins the ticket it finds
        elif fp in latest and ticketing.recurs(latest[fp], now):
            one_by_one.append(alert)  # reopens it as a repeat visit
        else:
            seen.add(fp)
            fresh.append(alert)
    if not fresh:
        return Opened([], one_by_one)

    sites = store.sites(session, {devices[a.subject].site_id for a in fresh})
    planned = [
        _new_ticket(
            ticketing,
            a,
            devices[a.subject],
            sites[devices[a.subject].site_id],
            latest.get(fingerprint[a.id]),
            now,
        )
        for a in fresh
    ]
    # Dispatched before they are stored, so each ticket is written once, as it ends up.
    decisions = _dispatch(ticketing, session, planned, devices, sites, now)
    records = [d.record() for d in decisions]
    planned = [
        _assigned(ticketing, t, d, r, now) if d.technician_id else replace(t, dispatch=r)
        for t, d, r in zip(planned, decisions, records, strict=True)
    ]
    try:
        ids = store.insert_tickets(session, planned)
    except TicketExists:
        # Another worker opened one of these episodes meanwhile: nothing was written, and
        # the per-alert path joins whatever it finds.
        return Opened([], [*one_by_one, *fresh])
    tickets = [replace(t, id=i) for t, i in zip(planned, ids, strict=True)]
    opened = [
        TicketEventRecord(t.id, now, "opened", "monitor", None, "open", _opened_detail(a, t))
        for a, t in zip(fresh, tickets, strict=True)
    ]
    dispatched = [
        TicketEventRecord(
            t.id,
            now,
            "assigned" if t.technician_id else "queued_for_dispatcher",
            "dispatch",
            "open",
            t.status,
            r,
        )
        for t, r in zip(tickets, records, strict=True)
    ]
    event_ids = store.add_ticket_events(session, [*opened, *dispatched])
    queued = _notices(
        ticketing,
        session,
        fresh,
        tickets,
        devices,
        sites,
        decisions,
        event_ids[: len(tickets)],
        event_ids[len(tickets) :],
        now,
    )
    assigned = sum(1 for t in tickets if t.technician_id)
    log.info(
        "%d tickets opened in one pass: %d assigned, %d to the dispatcher queue; "
        "%d messages queued",
        len(tickets),
        assigned,
        len(tickets) - assigned,
        queued,
    )
    done = [replace(a, ticket_id=t.id) for a, t in zip(fresh, tickets, strict=True)]
    return Opened(done, one_by_one)


def _new_ticket(
    ticketing: Ticketing,
    alert: AlertRecord,
    device: Device,
    site: Site,
    previous: Any,
    now: datetime,
) -> TicketRecord:
    fp = f"repair:{device.id}"
    return TicketRecord(
        kind="repair",
        fingerprint=fp,
        open_fingerprint=fp,
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
        previous_ticket_id=previous.id if previous is not None else None,
        opened_at=now,
        updated_at=now,
        sla_due_at=now + ticketing.sla(alert.severity),
    )


def _opened_detail(alert: AlertRecord, ticket: TicketRecord) -> dict[str, object]:
    detail: dict[str, object] = {"alert_id": alert.id, "rule": alert.rule_id}
    if ticket.previous_ticket_id is not None:
        detail["previous_ticket"] = ticket.previous_ticket_id
    return detail


def _dispatch(
    ticketing: Ticketing,
    session: Session,
    tickets: Sequence[TicketRecord],
    devices: dict[str, Device],
    sites: dict[str, Site],
    now: datetime,
) -> list[Decision]:
    """One dispatch pass over the storm, most severe first (then in the order the alerts
    came), each job handed out counting as load for the next decision; the decisions in
    the tickets' order."""
    rows = store.technicians(session)
    load = store.load(session)
    pool: dict[str, Candidate] = {t.id: candidate(t, load.get(t.id, 0)) for t in rows.values()}
    decisions: dict[int, Decision] = {}
    order = sorted(
        range(len(tickets)), key=lambda i: (-SEVERITY_RANK.get(tickets[i].severity, 0), i)
    )
    for index in order:
        ticket = tickets[index]
        device = devices.get(ticket.device_id or "")
        site = sites.get(ticket.site_id or "")
        decision = choose_technician(ticketing.job(ticket, device, site, now), list(pool.values()))
        decisions[index] = decision
        if decision.technician_id is not None:
            chosen = pool[decision.technician_id]
            pool[chosen.id] = replace(chosen, open_jobs=chosen.open_jobs + 1)
    return [decisions[i] for i in range(len(tickets))]


def _assigned(
    ticketing: Ticketing,
    ticket: TicketRecord,
    decision: Decision,
    record: dict[str, Any],
    now: datetime,
) -> TicketRecord:
    return replace(
        ticket,
        **changes(ticket, "assign", now),
        technician_id=decision.technician_id,
        dispatch=record,
        ack_due_at=now + ticketing.ack_within(ticket.severity),
    )


def _notices(
    ticketing: Ticketing,
    session: Session,
    alerts: Sequence[AlertRecord],
    tickets: Sequence[TicketRecord],
    devices: dict[str, Device],
    sites: dict[str, Site],
    decisions: Sequence[Decision],
    opened_ids: Sequence[int],
    dispatch_ids: Sequence[int],
    now: datetime,
) -> int:
    """The work orders (or dispatcher alerts) and the customers' fault notices, queued
    in one statement; the contexts are those :func:`ticket_context
    <forewarn.ticketing.notices.ticket_context>` would build one by one."""
    device_ids = [t.device_id for t in tickets if t.device_id]
    customers = store.customers(session, {t.customer_id for t in tickets if t.customer_id})
    technicians = store.technicians(session)
    readings = store.recent_readings(session, device_ids, RECENT_READINGS)
    earlier = store.earlier_tickets(session, device_ids, EARLIER_TICKETS + 1)
    dispatcher = ticketing.settings.dispatcher
    planned: list[NotificationRecord] = []
    for alert, ticket, decision, opened, dispatched in zip(
        alerts, tickets, decisions, opened_ids, dispatch_ids, strict=True
    ):
        device_id = ticket.device_id or ""
        technician = technicians.get(ticket.technician_id or "")
        customer = customers.get(ticket.customer_id or "")
        before = [t for t in earlier.get(device_id, []) if t.id != ticket.id]
        context = context_of(
            ticket,
            device=devices.get(device_id),
            site=sites.get(ticket.site_id or ""),
            customer=customer,
            technician=technician,
            alert=alert,
            recent_readings=[reading_context(*r) for r in readings.get(device_id, [])],
            earlier_tickets=[earlier_context(t) for t in before[:EARLIER_TICKETS]],
            forecast=forecast_of([alert.evidence]),
        )
        critical = ticket.severity == "critical"
        if technician is not None:
            planned += messages(
                key=f"ticket-event:{dispatched}",
                event="work_order",
                recipient=technician_recipient(technician),
                context=context,
                now=now,
                ticket_id=ticket.id,
                critical=critical,
            )
        elif dispatcher is not None:
            planned += messages(
                key=f"ticket-event:{dispatched}",
                event="dispatcher_alert",
                recipient=dispatcher_recipient(dispatcher, "dispatcher"),
                context={**context, "reason": decision.reason},
                now=now,
                ticket_id=ticket.id,
                critical=True,  # a job nobody owns must not wait for the morning
            )
        if customer is not None:
            planned += messages(
                key=f"ticket-event:{opened}",
                event="fault_notice",
                recipient=customer_recipient(customer),
                context=context,
                now=now,
                ticket_id=ticket.id,
                critical=critical,
            )
    return store.enqueue(session, planned)


def list_explained(session: Session, alerts: Sequence[AlertRecord], now: datetime) -> int:
    """Alerts held by a firing inhibition source (``inhibited:<fingerprint>``) join the
    source's ticket as devices it explains: the dispatcher sees one incident per site with
    its devices listed, nobody is told about them, and the ticket's timeline says which
    devices joined (one ``devices_affected`` event per ticket and rule). Returns how many
    alerts were listed."""
    by_source: dict[str, list[AlertRecord]] = {}
    for alert in alerts:
        reason = alert.suppressed_by or ""
        if reason.startswith("inhibited:"):
            by_source.setdefault(reason.removeprefix("inhibited:"), []).append(alert)
    tickets = store.source_tickets(session, by_source)
    listed: dict[int, list[AlertRecord]] = {}
    for source, held in by_source.items():
        ticket = tickets.get(source)
        if ticket is not None:
            listed.setdefault(ticket, []).extend(a for a in held if a.ticket_id != ticket)
    store.attach(session, {a.id: t for t, held in listed.items() for a in held})
    status = store.statuses(session, listed)
    store.add_ticket_events(
        session,
        [
            TicketEventRecord(
                ticket,
                now,
                "devices_affected",
                "monitor",
                status[ticket],
                status[ticket],
                {
                    "rule": rule,
                    "devices": sorted(a.subject for a in held if a.rule_id == rule),
                    "alerts": sorted(a.id for a in held if a.rule_id == rule),
                },
            )
            for ticket, held in sorted(listed.items())
            for rule in sorted({a.rule_id for a in held})
            if ticket in status
        ],
    )
    return sum(len(held) for held in listed.values())
