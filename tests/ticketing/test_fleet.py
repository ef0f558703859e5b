"""A seeded random fleet: sites and technicians with different skills, regions and shifts;
faults at night, on weekends and in bursts. Every fault gets exactly one ticket, and no
ticket is ever given to someone off shift (beyond the SLA), out of region, without the
skill or over capacity."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from forewarn.config import parse_config
from forewarn.service import build, sweep_tickets
from forewarn.store.models import Device, Site, Technician, Ticket, TicketEvent
from forewarn.ticketing.shifts import next_on_duty, schedule_from
from tests.ticketing.test_tickets import Fleet, SteppingClock, fault, ingest, migrated_fleet

KINDS = ("inverter", "battery", "heatpump")
REGIONS = ("north", "south", "east")
SHIFTS = (
    "",
    "shifts: [{days: [mon, tue, wed, thu, fri], hours: '08:00-17:00'}]",
    "shifts: [{days: [sat, sun], hours: '09:00-21:00'}]",
    "shifts: [{days: [mon, tue, wed, thu, fri, sat, sun], hours: '22:00-06:00'}]",
)
ZONES = ("Europe/Lisbon", "Asia/Bangkok", "America/Sao_Paulo")


def random_fleet(rng: random.Random) -> tuple[str, list[str]]:
    lines = ["customers:"]
    sites, devices, techs = ["sites:"], ["devices:"], ["technicians:"]
    ids = []
    for i in range(12):
        lines.append(f"  - {{id: c{i}, name: C{i}, email: c{i}@example.com}}")
        sites.append(
            f"  - {{id: s{i}, name: S{i}, customer: c{i}, region: {rng.choice(REGIONS)}, "
            f"timezone: {rng.choice(ZONES)}}}"
        )
        devices.append(f"  - {{id: d{i}, site: s{i}, model: M, kind: {rng.choice(KINDS)}}}")
        ids.append(f"d{i}")
    for i in range(8):
        skills = rng.sample(KINDS, rng.randint(1, 2))
        regions = rng.sample(REGIONS, rng.randint(1, 2))
        techs.append(
            f"  - {{id: t{i}, name: T{i}, email: t{i}@example.com, skills: [{', '.join(skills)}], "
            f"regions: [{', '.join(regions)}], max_jobs: {rng.randint(1, 3)}, "
            f"timezone: {rng.choice(ZONES)}, days_off: [2026-11-10]"
            + (f", {rng.choice(SHIFTS)}" if rng.random() < 0.8 else "")
            + "}"
        )
    monitors = """
monitors:
  - id: faults
    kind: fault_code
    codes:
      E1: {severity: critical, description: trip}
      E2: {severity: major, description: warning}
      E3: {severity: minor, description: notice}
"""
    text = "\n".join(lines + sites + devices + techs) + monitors
    return text, ids


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_fault_gets_one_ticket_for_an_eligible_technician(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    config, devices = random_fleet(rng)
    url = f"sqlite:///{tmp_path}/fleet.db"
    for fleet in migrated_fleet(url):
        run_fleet(fleet, config, devices, rng)


def run_fleet(fleet: Fleet, config: str, devices: list[str], rng: random.Random) -> None:
    # Start on a Friday evening so the faults fall on nights and the weekend.
    fleet.clock = SteppingClock(datetime(2026, 11, 6, 18, 0, tzinfo=UTC))
    app = build(parse_config(config, {"FOREWARN_DATABASE_URL": fleet.url}), clock=fleet.clock)
    fleet.apps.append(app)
    faulted: set[str] = set()
    for _ in range(40):
        burst = rng.sample(devices, rng.randint(1, 4))
        for device in burst:
            ingest(app, [fault(device, rng.choice(("E1", "E2", "E3")), fleet.clock.now())])
            faulted.add(device)
        fleet.clock.advance(minutes=rng.choice((1, 7, 45, 180)))
        sweep_tickets(app)

    with app.sessions() as session:
        all_tickets = session.scalars(select(Ticket)).all()
        technicians = {t.id: t for t in session.scalars(select(Technician))}
        assert {t.device_id for t in all_tickets} == faulted
        open_per_device: dict[str | None, int] = {}
        for t in all_tickets:
            if t.open_fingerprint is not None:
                open_per_device[t.device_id] = open_per_device.get(t.device_id, 0) + 1
        assert all(count == 1 for count in open_per_device.values())
        assignments = session.execute(
            select(TicketEvent, Ticket)
            .join(Ticket, Ticket.id == TicketEvent.ticket_id)
            .where(TicketEvent.kind.in_(("assigned", "reassigned")))
        ).all()
        assert assignments, "the random fleet assigned nothing: the test would prove nothing"
        for event, ticket in assignments:
            tech = technicians[event.detail["chosen"]]
            device = session.get(Device, ticket.device_id)
            site = session.get(Site, ticket.site_id)
            assert device is not None and site is not None
            assert device.kind in tech.skills
            assert site.region in tech.regions
            start = next_on_duty(schedule_from(tech.timezone, tech.shifts, tech.days_off), event.at)
            assert start is not None
            # The SLA in force when the technician was chosen: a worse fault code later
            # raises the ticket's priority and brings its SLA closer (priority_raised).
            raised = session.scalars(
                select(TicketEvent)
                .where(
                    TicketEvent.ticket_id == ticket.id,
                    TicketEvent.kind == "priority_raised",
                    TicketEvent.at >= event.at,
                    TicketEvent.id > event.id,
                )
                .order_by(TicketEvent.id)
            ).first()
            due = ticket.sla_due_at
            if raised is not None and raised.detail["sla_due"][0] is not None:
                due = datetime.fromisoformat(raised.detail["sla_due"][0])
            assert due is not None and start <= due
            chosen = next(c for c in event.detail["candidates"] if c["technician"] == tech.id)
            assert chosen["open_jobs"] < tech.max_jobs
