"""Held notices follow their ticket: driven through ``build()``, the ingest hand-over,
technician SMS commands and the sender, with a stepping clock.

Marta (Lisbon, UTC in November) has quiet hours 22:00-07:00; the fault starts at 03:00.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from forewarn.config.loading import parse_config
from forewarn.notifier.channels import Channel
from forewarn.notifier.channels.development import DevelopmentChannel
from forewarn.service import Forewarn, build, sweep_tickets
from forewarn.store.engine import make_engine
from forewarn.store.models import Notification, Ticket
from forewarn.store.schema import upgrade
from forewarn.ticketing.commands import handle_technician_sms
from tests.ticketing.test_tickets import (
    FLEET,
    START,
    TECHNICIANS,
    SteppingClock,
    fault,
    hot,
    ingest,
)

QUIET = FLEET.replace(
    "channels: [email, sms]}",
    'channels: [sms], quiet_hours: "22:00-07:00", timezone: Europe/Lisbon}',
)
CONFIG = (
    QUIET
    + TECHNICIANS
    + """
notifications:
  sender_threads: 1
  merge_window: 2m
"""
)


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock(START)


@pytest.fixture
def app(database_url: str, clock: SteppingClock) -> Iterator[Forewarn]:
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    channels: dict[str, Channel] = {
        "sms": DevelopmentChannel("sms", io.StringIO()),
        "email": DevelopmentChannel("email", io.StringIO()),
    }
    config = parse_config(CONFIG, {"FOREWARN_DATABASE_URL": database_url})
    forewarn = build(config, clock=clock, channels=channels)
    yield forewarn
    forewarn.sender.close()
    forewarn.engine.dispose()


def overheat(app: Forewarn, clock: SteppingClock) -> int:
    """inv-101 (Marta's) runs hot for six minutes: a major ticket, assigned to Ana."""
    for _ in range(6):
        ingest(app, [hot("inv-101", 85, clock.now())])
        clock.advance(minutes=1)
    with app.sessions() as session:
        return session.scalars(select(Ticket.id)).one()


def sms(app: Forewarn, technician: str, text: str) -> str:
    with app.sessions.begin() as session:
        return handle_technician_sms(session, technician, text, app.clock.now())


def to_marta(app: Forewarn) -> list[Notification]:
    with app.sessions() as session:
        return list(
            session.scalars(
                select(Notification)
                .where(Notification.recipient_id == "c-silva")
                .order_by(Notification.id)
            )
        )


def sent_to_marta(app: Forewarn) -> list[str]:
    """Marta's messages in the order they went out."""
    rows = [n for n in to_marta(app) if n.sent_at is not None]
    return [n.event for n in sorted(rows, key=lambda n: (n.sent_at, n.id))]


def test_a_notice_held_by_quiet_hours_is_dropped_when_its_ticket_is_resolved_first(
    app: Forewarn, clock: SteppingClock
) -> None:
    job = overheat(app, clock)
    sms(app, "t-ana", f"ACK {job}")
    app.sender.drain()
    assert sent_to_marta(app) == []  # 03:06: quiet hours hold the fault notice and the ETA

    clock.advance(hours=1)
    sms(app, "t-ana", f"DONE {job} reset the inverter")
    clock.at = START.replace(hour=7)
    app.sender.drain()

    rows = {n.event: n for n in to_marta(app)}
    assert sent_to_marta(app) == ["ticket_resolved", "satisfaction_survey"]
    for stale in ("fault_notice", "technician_assigned"):
        assert rows[stale].status == "superseded"
        assert rows[stale].last_error == (
            f"superseded: ticket {job} was resolved before this notice went out"
        )


def test_a_fault_that_clears_in_the_night_before_marta_was_told_brings_no_all_clear(
    app: Forewarn, clock: SteppingClock
) -> None:
    job = overheat(app, clock)
    ingest(app, [hot("inv-101", 60, clock.now())])  # 03:06 back to normal, nobody set out
    clock.advance(hours=2, minutes=1)
    sweep_tickets(app)  # 05:07: auto-closed after the grace
    app.sender.drain()

    clock.at = START.replace(hour=7)
    app.sender.drain()

    assert sent_to_marta(app) == []  # she never heard of the fault: no "working again"
    rows = {n.event: n for n in to_marta(app)}
    assert rows["fault_notice"].status == "superseded"
    assert rows["ticket_resolved"].status == "superseded"
    assert rows["ticket_resolved"].last_error == (
        f"superseded: ticket {job} closed without a visit and the customer "
        "was never told of the fault"
    )


def test_a_held_notice_is_raised_and_sent_at_once_when_its_ticket_becomes_critical(
    app: Forewarn, clock: SteppingClock
) -> None:
    overheat(app, clock)
    app.sender.drain()
    assert sent_to_marta(app) == []

    ingest(app, [fault("inv-101", "E021", clock.now())])  # grid isolation: critical
    app.sender.drain()

    [notice] = [n for n in to_marta(app) if n.event == "fault_notice"]
    assert notice.critical
    assert notice.status == "sent"
    assert notice.sent_at == clock.now()  # 03:06, inside quiet hours: critical goes now


def test_technician_assigned_never_overtakes_the_fault_notice(
    app: Forewarn, clock: SteppingClock
) -> None:
    clock.at = START.replace(hour=10)  # daytime: only the merge window holds the notice
    job = overheat(app, clock)
    sms(app, "t-ana", f"ACK {job}")  # the ETA is not merged or held: due at once
    app.sender.drain()

    assert sent_to_marta(app) == []  # the ETA waits for the fault notice
    [eta] = [n for n in to_marta(app) if n.event == "technician_assigned"]
    assert eta.status == "queued" and eta.last_error is not None

    clock.advance(minutes=2)
    app.sender.drain()
    clock.advance(seconds=10)
    app.sender.drain()

    assert sent_to_marta(app) == ["fault_notice", "technician_assigned", "visit_proposal"]


def test_a_waiting_all_clear_is_dropped_when_the_ticket_is_reopened(
    app: Forewarn, clock: SteppingClock
) -> None:
    job = overheat(app, clock)
    sms(app, "t-ana", f"ACK {job}")
    sms(app, "t-ana", f"DONE {job}")
    for _ in range(10):  # it cools down: the alert clears
        ingest(app, [hot("inv-101", 60, clock.now())])
        clock.advance(minutes=1)
    clock.advance(hours=1)
    assert overheat(app, clock) == job  # back within reopen_within: the ticket reopens
    with app.sessions() as session:
        assert session.get(Ticket, job).status != "resolved"  # type: ignore[union-attr]
    clock.at = START.replace(hour=7)
    app.sender.drain()

    rows = to_marta(app)
    assert [n.status for n in rows if n.event == "ticket_resolved"] == ["superseded"]
    assert "ticket_resolved" not in sent_to_marta(app)
    assert sent_to_marta(app)[0] == "fault_notice"
    assert timedelta(0) <= clock.now() - START.replace(hour=7)
