"""A live forewarn behind the console for the action tests: real monitors, ticketing and
outbox on SQLite, one inverter overheating and its work order assigned.

Ana (closest) gets the job; Bea is also eligible (further away); Joao works another
region. Tokens: one per role, and Ana's personal technician token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import select

from forewarn.service import Forewarn, web_app
from forewarn.store.models import Alert, Ticket
from tests.ticketing.test_tickets import Fleet, migrated_fleet, overheat

OPS = "ops-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef"
ANA = "ana-personal-token-0123456789"
BEA = "bea-personal-token-0123456789"
TECHNICIANS = """
technicians:
  - {id: t-ana, name: Ana Costa, phone: "+351913000201", email: ana@example.com,
     skills: [inverter], regions: [lisbon-west], home: {lat: 38.700, lon: -9.410}}
  - {id: t-bea, name: Bea Matos, phone: "+351913000204", email: bea@example.com,
     skills: [inverter], regions: [lisbon-west], home: {lat: 38.720, lon: -9.140}}
  - {id: t-joao, name: Joao Reis, phone: "+351913000203", email: joao@example.com,
     skills: [inverter], regions: [lisbon-south]}
"""
ENVIRON = {
    "FOREWARN_TOKENS": (f"ops:{OPS},viewer:{VIEWER},technician:t-ana:{ANA},technician:t-bea:{BEA}")
}


@dataclass
class Desk:
    fleet: Fleet
    app: Forewarn
    web: FastAPI
    ticket_id: int
    alert_id: int


@contextmanager
def running_desk(tmp_path: Path) -> Iterator[Desk]:
    """The fleet with inv-101 overheating: one firing alert, one ticket assigned to Ana."""
    fleets = migrated_fleet(f"sqlite:///{tmp_path / 'desk.db'}")
    fleet = next(fleets)
    try:
        app = fleet.start(TECHNICIANS)
        overheat(app, "inv-101", fleet.clock)
        with app.sessions() as session:
            ticket = session.scalars(select(Ticket)).one()
            alert = session.scalars(select(Alert).where(Alert.ticket_id == ticket.id)).one()
            assert ticket.technician_id == "t-ana", ticket.dispatch
        yield Desk(fleet, app, web_app(app, ENVIRON), ticket.id, alert.id)
    finally:
        for started in fleet.apps:
            started.engine.dispose()
        fleets.close()


def seed_week(desk: Desk, device: str = "inv-101", minutes: int = 10_080) -> int:
    """One reading per minute of ``temperature`` and ``power`` for ``device`` over the
    ``minutes`` before now (a daily solar curve, warm afternoons); returns rows written."""
    import math
    from datetime import timedelta

    from sqlalchemy import insert

    from forewarn.store.models import Reading

    end = desk.fleet.clock.now() - timedelta(minutes=7)  # before the overheating itself
    rows = []
    for n in range(minutes, 0, -1):
        at = end - timedelta(minutes=n)
        hour = at.hour + at.minute / 60
        sun = max(0.0, math.sin((hour - 6) / 12 * math.pi))
        rows.append(
            {
                "device_id": device,
                "metric": "temperature",
                "ts": at,
                "received_at": at,
                "value": round(35 + 30 * sun + 3 * math.sin(n / 17), 2),
                "stale": False,
            }
        )
        rows.append(
            {
                "device_id": device,
                "metric": "power",
                "ts": at,
                "received_at": at,
                "value": round(5000 * sun * (0.85 + 0.15 * math.sin(n / 41)), 1),
                "stale": False,
            }
        )
    with desk.app.sessions.begin() as session:
        for start in range(0, len(rows), 5_000):
            session.execute(insert(Reading), rows[start : start + 5_000])
    return len(rows)
