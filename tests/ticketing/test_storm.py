"""A storm: many alerts changing in one sweep get their tickets, dispatch and messages in
one pass, with the same outcome the alerts would get one by one (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from forewarn.store.models import Alert, Notification, Ticket, TicketEvent
from forewarn.web.app import create_app
from forewarn.web.dispatching import router
from tests.monitors.fleet import (
    Fleet,
    alerts,
    count,
    fault,
    ingest,
    running_fleet,
    temperature,
)

START = datetime(2026, 11, 3, 3, 0, tzinfo=UTC)
SITES = 8

CONFIG = (
    "customers:\n"
    + "".join(
        f'  - {{id: c-{s}, name: Customer {s}, phone: "+35191200010{s}", '
        f"email: c{s}@example.com}}\n"
        for s in range(SITES)
    )
    + "sites:\n"
    + "".join(
        f"  - {{id: s-{s}, name: Site {s}, customer: c-{s}, region: lisbon-west}}\n"
        for s in range(SITES)
    )
    + "devices:\n"
    + "".join(
        f"  - {{id: inv-{s}, site: s-{s}, model: SunPeak 5K, kind: inverter}}\n"
        for s in range(SITES)
    )
    + """technicians:
  - {id: t-ana, name: Ana Costa, phone: "+351913000201", email: ana@example.com,
     skills: [inverter], regions: [lisbon-west], max_jobs: 3}
  - {id: t-rui, name: Rui Lopes, phone: "+351913000202", email: rui@example.com,
     skills: [inverter], regions: [lisbon-west], max_jobs: 3}
ticketing:
  dispatcher: {name: Dispatch desk, email: dispatch@example.com}
monitors:
  - id: inverter-faults
    kind: fault_code
    codes:
      E021: {severity: critical, description: grid isolation fault}
  - id: device-offline
    kind: offline
    after: 10m
"""
)


@pytest.fixture
def fleet(database_url: str) -> Iterator[Fleet]:
    with running_fleet(database_url, CONFIG, START) as fleet:
        yield fleet


def test_it_gives_every_alert_of_a_storm_one_ticket_dispatched_within_capacity(
    fleet: Fleet,
) -> None:
    app = fleet.start()
    now = fleet.clock.advance(minutes=11)

    changed = app.monitors.sweep_offline(now)

    assert changed == SITES
    with app.sessions() as session:
        tickets = list(session.scalars(select(Ticket).order_by(Ticket.id)))
        rows = list(session.scalars(select(Alert).order_by(Alert.id)))
        events = Counter(session.scalars(select(TicketEvent.kind)))
        notices = list(session.scalars(select(Notification).order_by(Notification.id)))
    assert sorted(t.device_id or "" for t in tickets) == [f"inv-{s}" for s in range(SITES)]
    assert {a.ticket_id for a in rows} == {t.id for t in tickets}
    assert all(a.notified_at == now for a in rows)
    # Two technicians with room for three jobs each: six assigned, two wait for a person.
    load = Counter(t.technician_id for t in tickets)
    assert load == {"t-ana": 3, "t-rui": 3, None: 2}
    # Each assigned customer is offered visit windows, in the storm as one by one.
    assert events == {
        "opened": 8,
        "assigned": 6,
        "visit_proposed": 6,
        "queued_for_dispatcher": 2,
    }
    by_event = Counter((n.event, n.recipient_id, n.channel) for n in notices)
    assert by_event == {
        **{("fault_notice", f"c-{s}", "sms"): 1 for s in range(SITES)},
        ("work_order", "t-ana", "sms"): 3,
        ("work_order", "t-ana", "email"): 3,
        ("work_order", "t-rui", "sms"): 3,
        ("work_order", "t-rui", "email"): 3,
        ("dispatcher_alert", "dispatcher", "email"): 2,
        **{("visit_proposal", t.customer_id, "sms"): 1 for t in tickets if t.technician_id},
    }
    assert len({n.dedupe_key for n in notices}) == len(notices)
    assert all(n.context["ticket"]["id"] == n.ticket_id for n in notices)
    # The next sweep finds nothing to do.
    assert app.monitors.sweep_offline(now + timedelta(seconds=30)) == 0
    assert count(app, Notification) == len(notices)


def test_an_alert_of_a_storm_joins_the_ticket_already_open_on_its_device(fleet: Fleet) -> None:
    app = fleet.start()
    fleet.clock.advance(minutes=1)
    ingest(app, [fault("inv-0", "E021", fleet.clock.now())])
    with app.sessions() as session:
        first = session.scalars(select(Ticket)).one()
    now = fleet.clock.advance(minutes=10)

    assert app.monitors.sweep_offline(now) == SITES

    with app.sessions() as session:
        tickets = list(session.scalars(select(Ticket).where(Ticket.device_id == "inv-0")))
    assert [t.id for t in tickets] == [first.id]
    assert tickets[0].alert_count == 2
    assert count(app, Ticket) == SITES
    offline = alerts(app, "device-offline", "inv-0")
    assert [a.ticket_id for a in offline] == [first.id]


def test_the_same_alerts_one_sweep_at_a_time_leave_what_the_storm_leaves(fleet: Fleet) -> None:
    app = fleet.start()
    # Device s last reports at START + s minutes: each sweep finds one device silent and
    # goes the per-alert path. The outcome is the storm's (first test).
    for s in range(SITES):
        ingest(app, [temperature(f"inv-{s}", 40.0, START + timedelta(minutes=s))])
    for minute in range(SITES):
        app.monitors.sweep_offline(START + timedelta(minutes=10 + minute, seconds=1))

    with app.sessions() as session:
        tickets = list(session.scalars(select(Ticket).order_by(Ticket.id)))
        events = Counter(session.scalars(select(TicketEvent.kind)))
        notices = Counter((n.event, n.channel) for n in session.scalars(select(Notification)))
    assert len(tickets) == SITES
    assert Counter(t.technician_id for t in tickets) == {"t-ana": 3, "t-rui": 3, None: 2}
    # Each assigned customer is offered visit windows, in the storm as one by one.
    assert events == {
        "opened": 8,
        "assigned": 6,
        "visit_proposed": 6,
        "queued_for_dispatcher": 2,
    }
    assert notices == {
        ("fault_notice", "sms"): 8,
        ("work_order", "sms"): 6,
        ("work_order", "email"): 6,
        ("dispatcher_alert", "email"): 2,
        ("visit_proposal", "sms"): 6,
    }


INCIDENT_CONFIG = (
    """
customers:
  - {id: c-farm, name: Solar farm, phone: "+351912000200", email: farm@example.com}
sites:
  - {id: s-farm, name: Farm, customer: c-farm, region: lisbon-west}
devices:
  - {id: gw-1, site: s-farm, model: Gateway 2, kind: gateway}
"""
    + "".join(
        f"  - {{id: inv-{d}, site: s-farm, model: SunPeak 5K, kind: inverter}}\n" for d in range(6)
    )
    + """technicians:
  - {id: t-ana, name: Ana Costa, phone: "+351913000201", email: ana@example.com,
     skills: [inverter, gateway], regions: [lisbon-west], max_jobs: 5}
alerting:
  inhibit:
    - {source_rule: device-offline, source_kinds: [gateway], scope: site}
monitors:
  - id: device-offline
    kind: offline
    after: 10m
"""
)


@pytest.fixture
def farm(database_url: str) -> Iterator[Fleet]:
    with running_fleet(database_url, INCIDENT_CONFIG, START) as fleet:
        yield fleet


def test_a_site_gone_dark_is_one_incident_listing_its_devices(farm: Fleet) -> None:
    app = farm.start()
    now = farm.clock.advance(minutes=11)

    assert app.monitors.sweep_offline(now) == 7

    with app.sessions() as session:
        (ticket,) = session.scalars(select(Ticket)).all()
        listed = session.scalars(select(Alert.subject).where(Alert.ticket_id == ticket.id)).all()
        explained = session.scalars(
            select(TicketEvent).where(TicketEvent.kind == "devices_affected")
        ).all()
        notices = Counter((n.event, n.recipient_id) for n in session.scalars(select(Notification)))
    assert ticket.device_id == "gw-1"
    assert sorted(listed) == ["gw-1", *(f"inv-{d}" for d in range(6))]
    assert [e.detail["devices"] for e in explained] == [[f"inv-{d}" for d in range(6)]]
    # One work order (SMS and email) and one notice to the customer: not seven of each.
    assert notices == {
        ("work_order", "t-ana"): 2,
        ("fault_notice", "c-farm"): 1,
        ("visit_proposal", "c-farm"): 1,  # one incident: one visit to offer
    }
    with TestClient(create_app(app.config, app.sessions, app.clock, tokens={})) as client:
        page = client.get(f"/tickets/{ticket.id}")
    assert page.status_code == 200
    assert "6 devices" in page.text
    for device in ("inv-0", "inv-5"):
        assert f'href="/devices/{device}"' in page.text


def test_the_incident_clears_when_its_site_reports_again(farm: Fleet) -> None:
    app = farm.start()
    app.monitors.sweep_offline(farm.clock.advance(minutes=11))
    back = farm.clock.advance(minutes=1)
    ingest(app, [temperature(d, 40.0, back) for d in ["gw-1", *(f"inv-{d}" for d in range(6))]])

    with app.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        open_alerts = session.scalars(select(Alert).where(Alert.state != "resolved")).all()
    assert open_alerts == []
    assert ticket.cleared_at == back


def test_the_dispatcher_queue_shows_the_incident_with_its_devices(farm: Fleet) -> None:
    # Nobody repairs gateways: the incident waits for a person.
    app = farm.start(INCIDENT_CONFIG.replace("[inverter, gateway]", "[inverter]"))
    app.monitors.sweep_offline(farm.clock.advance(minutes=11))

    web = create_app(app.config, app.sessions, app.clock, tokens={}, extra_routers=[router])
    with TestClient(web) as client:
        page = client.get("/dispatch")

    assert page.status_code == 200
    assert "Incident:</strong> 6 more devices (inv-0, inv-1, inv-2, inv-3, inv-4, …)" in page.text
