"""Tickets opened by firing alerts, on a real store (SQLite and PostgreSQL), through ``build()``.

Samples arrive the way the ingester hands them over: readings stored and ``on_samples``
called in the same transaction. Nothing is sent: the tests read the outbox rows.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from forewarn.config import parse_config
from forewarn.notifier.channels import Channel
from forewarn.notifier.channels.development import DevelopmentChannel
from forewarn.service import Forewarn, build
from forewarn.store.engine import make_engine
from forewarn.store.models import Alert, Notification, Reading, Ticket, TicketEvent
from forewarn.store.schema import upgrade
from forewarn.telemetry.sample import STATUS_METRIC, Sample

START = datetime(2026, 11, 3, 3, 0, tzinfo=UTC)

FLEET = """
customers:
  - {id: c-silva, name: Marta Silva, phone: "+351912000101", email: marta@example.com,
     channels: [email, sms]}
  - {id: c-okafor, name: Daniel Okafor, phone: "+351912000102", email: daniel@example.com}
sites:
  - {id: s-cascais, name: Silva home, customer: c-silva, region: lisbon-west,
     location: {lat: 38.697, lon: -9.421}}
  - {id: s-sintra, name: Okafor home, customer: c-okafor, region: lisbon-west,
     location: {lat: 38.800, lon: -9.381}}
devices:
  - {id: inv-101, site: s-cascais, model: SunPeak 5K, kind: inverter}
  - {id: inv-201, site: s-sintra, model: SunPeak 5K, kind: inverter}
monitors:
  - id: inverter-overheating
    kind: threshold
    metric: temperature
    above: 80
    clear: 70
    for: 5m
    suggested_fix: Check the cooling fan.
  - id: inverter-faults
    kind: fault_code
    codes:
      E021: {severity: critical, description: grid isolation fault}
"""

TECHNICIANS = """
technicians:
  - {id: t-ana, name: Ana Costa, phone: "+351913000201", email: ana@example.com,
     skills: [inverter, battery], regions: [lisbon-west], home: {lat: 38.710, lon: -9.300}}
  - {id: t-rui, name: Rui Lopes, phone: "+351913000202", email: rui@example.com,
     skills: [battery], regions: [lisbon-west, lisbon-south]}
  - {id: t-joao, name: Joao Reis, phone: "+351913000203", email: joao@example.com,
     skills: [inverter], regions: [lisbon-south]}
"""


class SteppingClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at


@dataclass
class Fleet:
    """One database; every :meth:`start` builds forewarn on it (one more worker)."""

    url: str
    clock: SteppingClock = field(default_factory=lambda: SteppingClock(START))
    apps: list[Forewarn] = field(default_factory=list)

    def start(self, technicians: str = TECHNICIANS) -> Forewarn:
        channels: dict[str, Channel] = {
            "sms": DevelopmentChannel("sms", io.StringIO()),
            "email": DevelopmentChannel("email", io.StringIO()),
        }
        config = parse_config(FLEET + technicians, {"FOREWARN_DATABASE_URL": self.url})
        app = build(config, clock=self.clock, channels=channels)
        self.apps.append(app)
        return app


def migrated_fleet(url: str) -> Iterator[Fleet]:
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    fleet = Fleet(url)
    yield fleet
    for app in fleet.apps:
        app.engine.dispose()


@pytest.fixture
def fleet(database_url: str) -> Iterator[Fleet]:
    yield from migrated_fleet(database_url)


@pytest.fixture
def postgres_fleet(postgres_url: str) -> Iterator[Fleet]:
    yield from migrated_fleet(postgres_url)


def readings(samples: Sequence[Sample]) -> list[Reading]:
    return [
        Reading(
            device_id=s.device_id,
            metric=s.metric,
            ts=s.ts,
            value=s.value,
            code=s.code,
            received_at=s.received_at,
        )
        for s in samples
    ]


def ingest(app: Forewarn, samples: Sequence[Sample]) -> None:
    """Store ``samples`` and evaluate them in one transaction, as the ingester does."""
    with app.sessions.begin() as session:
        session.add_all(readings(samples))
        app.monitors.on_samples(session, samples, app.clock.now())


def hot(device: str, value: float, at: datetime) -> Sample:
    return Sample(device, "temperature", at, received_at=at, value=value)


def fault(device: str, code: str, at: datetime) -> Sample:
    return Sample(device, STATUS_METRIC, at, received_at=at, code=code)


def overheat(app: Forewarn, device: str, clock: SteppingClock, minutes: int = 6) -> None:
    """``device`` reports 85 degrees every minute for ``minutes`` minutes (the hold is 5)."""
    for _ in range(minutes):
        ingest(app, [hot(device, 85, clock.now())])
        clock.advance(minutes=1)


def tickets(app: Forewarn) -> list[Ticket]:
    with app.sessions() as session:
        return list(session.scalars(select(Ticket).order_by(Ticket.id)))


def events(app: Forewarn, ticket: Ticket) -> list[TicketEvent]:
    with app.sessions() as session:
        query = select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
        return list(session.scalars(query.order_by(TicketEvent.id)))


def outbox(app: Forewarn, event: str | None = None) -> list[tuple[str, str, str, str]]:
    """(event, recipient, channel, address) of every queued notification."""
    query = select(
        Notification.event, Notification.recipient_id, Notification.channel, Notification.address
    ).order_by(Notification.id)
    if event is not None:
        query = query.where(Notification.event == event)
    with app.sessions() as session:
        return [(e, r, c, a) for e, r, c, a in session.execute(query)]


def test_it_opens_a_work_order_for_the_eligible_technician_and_tells_the_customer(
    fleet: Fleet,
) -> None:
    app = fleet.start()

    overheat(app, "inv-101", fleet.clock)

    fired_at = START + timedelta(minutes=5)
    (ticket,) = tickets(app)
    assert ticket.kind == "repair"
    assert ticket.device_id == "inv-101"
    assert ticket.customer_id == "c-silva"
    assert ticket.status == "assigned"
    assert ticket.technician_id == "t-ana"
    assert ticket.priority == "P2"
    assert ticket.alert_count == 1
    assert ticket.suggested_fix == "Check the cooling fan."
    assert ticket.opened_at == fired_at
    assert ticket.sla_due_at == fired_at + timedelta(hours=24)
    assert [(e.kind, e.to_status) for e in events(app, ticket)] == [
        ("opened", "open"),
        ("assigned", "assigned"),
        ("visit_proposed", "assigned"),
    ]
    assert outbox(app) == [
        ("work_order", "t-ana", "sms", "+351913000201"),
        ("work_order", "t-ana", "email", "ana@example.com"),
        ("visit_proposal", "c-silva", "email", "marta@example.com"),
        ("fault_notice", "c-silva", "email", "marta@example.com"),
    ]


def test_it_records_why_the_technician_was_chosen(fleet: Fleet) -> None:
    app = fleet.start()

    overheat(app, "inv-101", fleet.clock)

    (ticket,) = tickets(app)
    dispatch = ticket.dispatch
    assert dispatch["chosen"] == "t-ana"
    assert "has the skill 'inverter'" in dispatch["reason"]
    (candidate,) = dispatch["candidates"]
    assert candidate["technician"] == "t-ana"
    assert candidate["open_jobs"] == 0
    assert candidate["distance_km"] == pytest.approx(10.7, abs=0.2)
    assert candidate["score"] == pytest.approx(candidate["distance_km"] * 0.01, abs=0.002)
    assert dispatch["excluded"] == {
        "t-rui": "lacks skill 'inverter'",
        "t-joao": "does not serve region 'lisbon-west'",
    }
    assigned = events(app, ticket)[1]
    assert assigned.detail == dispatch


def test_it_attaches_a_second_alert_on_the_device_to_its_open_ticket(fleet: Fleet) -> None:
    app = fleet.start()
    overheat(app, "inv-101", fleet.clock)

    ingest(app, [fault("inv-101", "E021", fleet.clock.now())])

    (ticket,) = tickets(app)
    assert ticket.alert_count == 2
    assert [e.kind for e in events(app, ticket)] == [
        "opened",
        "assigned",
        "visit_proposed",
        "alert_attached",
        "priority_raised",
    ]
    attached = events(app, ticket)[3]
    assert attached.detail["rule"] == "inverter-faults"
    with app.sessions() as session:
        linked = session.scalars(select(Alert.ticket_id).where(Alert.state == "firing")).all()
    assert linked == [ticket.id, ticket.id]
    assert len(outbox(app, "work_order")) == 2
    assert len(outbox(app, "fault_notice")) == 1


def test_it_keeps_the_ticket_open_when_its_alert_clears(fleet: Fleet) -> None:
    app = fleet.start()
    overheat(app, "inv-101", fleet.clock)

    ingest(app, [hot("inv-101", 65, fleet.clock.now())])

    (ticket,) = tickets(app)
    assert ticket.status == "assigned"
    assert ticket.open_fingerprint == "repair:inv-101"
    assert [e.kind for e in events(app, ticket)][-1] == "alert_cleared"


def test_it_queues_the_ticket_for_the_dispatcher_when_nobody_is_eligible(
    fleet: Fleet,
) -> None:
    nobody_in_the_west = """
technicians:
  - {id: t-joao, name: Joao Reis, phone: "+351913000203", email: joao@example.com,
     skills: [inverter], regions: [lisbon-south]}
"""
    app = fleet.start(nobody_in_the_west)

    ingest(app, [fault("inv-201", "E021", fleet.clock.now())])

    (ticket,) = tickets(app)
    assert ticket.status == "open"
    assert ticket.technician_id is None
    assert ticket.priority == "P1"
    assert ticket.dispatch["chosen"] is None
    assert ticket.dispatch["excluded"] == {"t-joao": "does not serve region 'lisbon-west'"}
    queued = events(app, ticket)[1]
    assert queued.kind == "queued_for_dispatcher"
    assert "dispatcher queue" in queued.detail["reason"]
    assert outbox(app) == [("fault_notice", "c-okafor", "sms", "+351912000102")]


def test_it_gives_the_next_job_to_the_next_technician_when_the_first_is_full(
    fleet: Fleet,
) -> None:
    ana_takes_one_job = """
technicians:
  - {id: t-ana, name: Ana Costa, phone: "+351913000201", email: ana@example.com,
     skills: [inverter], regions: [lisbon-west], max_jobs: 1, home: {lat: 38.75, lon: -9.40}}
  - {id: t-bea, name: Bea Matos, phone: "+351913000204", email: bea@example.com,
     skills: [inverter], regions: [lisbon-west], max_jobs: 3, home: {lat: 38.70, lon: -9.10}}
"""
    app = fleet.start(ana_takes_one_job)

    ingest(app, [fault("inv-101", "E021", fleet.clock.now())])
    fleet.clock.advance(minutes=1)
    ingest(app, [fault("inv-201", "E021", fleet.clock.now())])

    first, second = tickets(app)
    assert first.technician_id == "t-ana"
    assert second.technician_id == "t-bea"
    assert second.dispatch["excluded"] == {"t-ana": "at capacity (1/1 open jobs)"}
    assert [r for _, r, _, _ in outbox(app, "work_order")] == ["t-ana"] * 2 + ["t-bea"] * 2


def test_it_opens_one_ticket_when_two_workers_fire_alerts_on_a_device_at_once(
    postgres_fleet: Fleet,
) -> None:
    clock = postgres_fleet.clock
    first = postgres_fleet.start()
    overheat(first, "inv-101", clock, minutes=3)  # pending on the first worker
    second = postgres_fleet.start()
    clock.advance(minutes=3)
    now = clock.now()
    both_inside = threading.Barrier(2, timeout=10)
    failures: list[BaseException] = []
    saw_second_wait = threading.Event()

    def fire_overheating() -> None:
        try:
            with first.sessions.begin() as session:
                samples = [hot("inv-101", 88, now)]
                session.add_all(readings(samples))
                first.monitors.on_samples(session, samples, now)
                both_inside.wait()
                # Keep the ticket uncommitted until the other worker waits on it.
                if waiting_on_a_lock(first, timeout=10):
                    saw_second_wait.set()
        except BaseException as exc:
            failures.append(exc)

    def fire_fault() -> None:
        try:
            both_inside.wait()
            ingest(second, [fault("inv-101", "E021", now)])
        except BaseException as exc:
            failures.append(exc)

    workers = [
        threading.Thread(target=fire_overheating, daemon=True),
        threading.Thread(target=fire_fault, daemon=True),
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)

    assert failures == []
    assert saw_second_wait.is_set()
    (ticket,) = tickets(first)
    assert ticket.alert_count == 2
    assert [e.kind for e in events(first, ticket)] == [
        "opened",
        "assigned",
        "visit_proposed",
        "alert_attached",
        "priority_raised",
    ]
    assert len(outbox(first, "work_order")) == 2
    with first.sessions() as session:
        firing = session.execute(
            select(Alert.rule_id, Alert.ticket_id).where(Alert.state == "firing")
        ).all()
        most_open = session.scalar(
            select(func.count())
            .where(Alert.open_fingerprint.is_not(None))
            .group_by(Alert.fingerprint)
            .order_by(func.count().desc())
            .limit(1)
        )
    assert sorted(firing) == [
        ("inverter-faults", ticket.id),
        ("inverter-overheating", ticket.id),
    ]
    assert most_open == 1


def waiting_on_a_lock(app: Forewarn, timeout: float) -> bool:
    """Whether another session of this database is blocked on a lock within ``timeout``."""
    deadline = time.monotonic() + timeout
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while time.monotonic() < deadline:
        with app.engine.connect() as connection:  # a fresh snapshot of the activity
            if connection.scalar(query):
                return True
        time.sleep(0.02)
    return False
