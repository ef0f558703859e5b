"""Rule defects found in issue 10, each through the ingest path (``on_samples``) and the
scheduled sweep with the clock injected: a worse fault code raises the open alert and its
ticket, a junk code clears nothing, and a silent device's rate alert resolves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from forewarn.store.models import Ticket, TicketEvent
from forewarn.telemetry.sample import Sample
from tests.monitors.fleet import Fleet, alerts, fault, ingest, running_fleet

START = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
CONFIG = """
customers:
  - {id: c-silva, name: Marta Silva, phone: "+351912000101"}
sites:
  - {id: s-home, name: Home, customer: c-silva, region: west}
devices:
  - {id: inv-1, site: s-home, model: SunPeak 5K, kind: inverter}
technicians:
  - {id: t-ana, name: Ana Costa, phone: "+351913000201", skills: [inverter], regions: [west]}
monitors:
  - id: faults
    kind: fault_code
    codes:
      W100: {severity: minor, description: fan warning}
      E021: {severity: critical, description: grid isolation fault}
  - {id: heating-fast, kind: rate, metric: temperature, rise: 30, per: 1h, window: 10m}
"""


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with running_fleet(f"sqlite:///{tmp_path / 'forewarn.db'}", CONFIG, START) as fleet:
        yield fleet


def ticket_of(fleet: Fleet) -> Ticket:
    with fleet.apps[-1].sessions() as session:
        (ticket,) = session.scalars(select(Ticket)).all()
        return ticket


def test_a_critical_code_while_a_minor_one_is_open_raises_the_alert_and_the_ticket(
    fleet: Fleet,
) -> None:
    app = fleet.start()
    ingest(app, [fault("inv-1", "W100", fleet.clock.now())])
    assert ticket_of(fleet).priority == "P3"
    ingest(app, [fault("inv-1", "E021", fleet.clock.advance(minutes=5))])

    (alert,) = alerts(app, "faults")
    assert (alert.state, alert.severity) == ("firing", "critical")
    assert alert.summary == "fault E021: grid isolation fault"
    ticket = ticket_of(fleet)
    assert (ticket.severity, ticket.priority) == ("critical", "P1")
    # A lesser code afterwards lowers nothing.
    ingest(app, [fault("inv-1", "W100", fleet.clock.advance(minutes=5))])
    assert alerts(app, "faults")[0].severity == "critical"


def test_raising_an_alert_counts_it_once_on_its_ticket(fleet: Fleet) -> None:
    app = fleet.start()
    ingest(app, [fault("inv-1", "W100", fleet.clock.now())])
    ingest(app, [fault("inv-1", "E021", fleet.clock.advance(minutes=5))])

    ticket = ticket_of(fleet)
    assert ticket.alert_count == 1
    with app.sessions() as session:
        kinds = session.scalars(
            select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket.id)
        ).all()
    assert kinds.count("priority_raised") == 1
    assert "alert_attached" not in kinds


def test_a_junk_code_does_not_clear_a_real_fault_but_ok_does(fleet: Fleet) -> None:
    app = fleet.start()
    ingest(app, [fault("inv-1", "E021", fleet.clock.now())])
    ingest(app, [fault("inv-1", "#@!", fleet.clock.advance(minutes=1))])
    ingest(app, [fault("inv-1", "E999", fleet.clock.advance(minutes=1))])
    assert [a.state for a in alerts(app, "faults")] == ["firing"]
    ingest(app, [fault("inv-1", "OK", fleet.clock.advance(minutes=1))])
    assert [a.state for a in alerts(app, "faults")] == ["resolved"]


def test_a_silent_devices_rate_alert_resolves_from_the_sweep_once_its_window_is_empty(
    fleet: Fleet,
) -> None:
    app = fleet.start()
    for minute in range(6):  # +10 degrees a minute: 600 per hour
        at = fleet.clock.now()
        ingest(app, [Sample("inv-1", "temperature", at, at, 40.0 + 10 * minute)])
        fleet.clock.advance(minutes=1)
    last = fleet.clock.now() - timedelta(minutes=1)
    assert [a.state for a in alerts(app, "heating-fast")] == ["firing"]
    # The device falls silent. Within the window the alert stays; after it, it resolves.
    app.monitors.sweep(last + timedelta(minutes=9))
    assert [a.state for a in alerts(app, "heating-fast")] == ["firing"]
    app.monitors.sweep(last + timedelta(minutes=11))
    (alert,) = alerts(app, "heating-fast")
    assert alert.state == "resolved"
    assert alert.resolved_at == last + timedelta(minutes=11)
