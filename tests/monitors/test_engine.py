"""The monitors against a real store (SQLite and PostgreSQL), entered through ``build()``.

Samples arrive the way the ingester hands them over: readings stored, the device's
last-seen time moved forward, and ``on_samples`` called in the same transaction.
Building forewarn again on the same database is a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from forewarn.service import Forewarn
from forewarn.store.models import Notification, Ticket
from tests.monitors.fleet import (
    Fleet,
    alerts,
    count,
    fault,
    ingest,
    report,
    running_fleet,
    temperature,
    totals,
    transitions,
)

START = datetime(2026, 11, 3, 3, 0, tzinfo=UTC)
OVERHEATING = "inverter-overheating"
OFFLINE = "device-offline"

CONFIG = """
customers:
  - {id: c-silva, name: Marta Silva, phone: "+351912000101", email: marta@example.com}
sites:
  - {id: s-cascais, name: Silva home, customer: c-silva, region: lisbon-west,
     location: {lat: 38.697, lon: -9.421}}
devices:
  - {id: inv-101, site: s-cascais, model: SunPeak 5K, kind: inverter}
  - {id: inv-102, site: s-cascais, model: SunPeak 5K, kind: inverter}
  - {id: inv-103, site: s-cascais, model: SunPeak 5K, kind: inverter}
technicians:
  - {id: t-ana, name: Ana Costa, phone: "+351913000201", email: ana@example.com,
     skills: [inverter], regions: [lisbon-west]}
monitors:
  - id: inverter-overheating
    kind: threshold
    applies_to: {kinds: [inverter]}
    metric: temperature
    above: 80
    clear: 70
    for: 5m
    suggested_fix: Check the cooling fan.
    overrides:
      # inv-103 sits in an unventilated attic: it fires on the first hot reading.
      - {device: inv-103, for: 0s}
  - id: inverter-faults
    kind: fault_code
    codes:
      E021: {severity: critical, description: grid isolation fault}
  - id: device-offline
    kind: offline
    after: 10m
"""


@pytest.fixture
def fleet(database_url: str) -> Iterator[Fleet]:
    with running_fleet(database_url, CONFIG, START) as fleet:
        yield fleet


# -- thresholds --------------------------------------------------------------------------


def test_it_fires_one_alert_when_a_reading_stays_above_the_level_for_the_hold(
    fleet: Fleet,
) -> None:
    app = fleet.start()
    for _ in range(7):
        report(app, "inv-101", 85)
        fleet.clock.advance(minutes=1)

    (alert,) = alerts(app)
    assert alert.rule_id == OVERHEATING
    assert alert.subject == "inv-101"
    assert alert.state == "firing"
    assert alert.pending_since == START
    assert alert.firing_since == START + timedelta(minutes=5)
    assert alert.suggested_fix == "Check the cooling fan."
    assert transitions(app, alert) == [(None, "pending"), ("pending", "firing")]
    (ticket,) = _tickets(app)
    assert alert.ticket_id == ticket.id


def test_it_opens_nothing_for_noise_below_the_level(fleet: Fleet) -> None:
    app = fleet.start()
    for value in (72, 79.9, 80, 64, 80, 79):
        report(app, "inv-101", value)
        report(app, "inv-103", value)
        fleet.clock.advance(minutes=2)

    assert totals(app) == {"alerts": 0, "alert_events": 0, "tickets": 0, "notifications": 0}


def test_it_resolves_a_pending_alert_without_a_ticket_when_the_value_returns_in_time(
    fleet: Fleet,
) -> None:
    app = fleet.start()
    for value in (85, 90, 88, 79, 60, 60):
        report(app, "inv-101", value)
        fleet.clock.advance(minutes=1)

    (alert,) = alerts(app)
    assert alert.state == "resolved"
    assert alert.open_fingerprint is None
    assert alert.firing_since is None
    assert alert.resolved_at == START + timedelta(minutes=3)
    assert transitions(app, alert) == [(None, "pending"), ("pending", "resolved")]
    assert count(app, Ticket) == 0
    assert count(app, Notification) == 0


def test_it_raises_one_alert_for_a_sensor_wavering_around_the_level(fleet: Fleet) -> None:
    app = fleet.start()
    for value in (81, 79, 81, 79, 81, 79, 82, 78, 81, 71):
        report(app, "inv-103", value)
        fleet.clock.advance(seconds=30)

    (alert,) = alerts(app)
    assert alert.state == "firing"
    assert transitions(app, alert) == [(None, "firing")]
    assert count(app, Ticket) == 1


def test_it_resolves_only_below_the_clear_level(fleet: Fleet) -> None:
    app = fleet.start()
    for value in (85, 75, 70.5, 70):
        report(app, "inv-103", value)
        fleet.clock.advance(minutes=1)

    (alert,) = alerts(app)
    assert alert.state == "resolved"
    assert alert.resolved_at == START + timedelta(minutes=3)


def test_it_never_fires_on_stale_readings(fleet: Fleet) -> None:
    app = fleet.start()

    ingest(app, [temperature("inv-103", 99, START - timedelta(hours=3), stale=True)])

    assert alerts(app) == []


def test_it_changes_nothing_when_the_samples_of_a_firing_alert_come_again(
    fleet: Fleet,
) -> None:
    app = fleet.start()
    episode = []
    for _ in range(6):
        episode.append(report(app, "inv-101", 85))
        fleet.clock.advance(minutes=1)
    before = totals(app)
    assert before["tickets"] == 1

    ingest(app, episode, store=False)
    ingest(app, list(reversed(episode)), store=False)

    assert totals(app) == before
    (alert,) = alerts(app)
    assert alert.firing_since == START + timedelta(minutes=5)


def test_it_does_not_reopen_an_episode_when_its_samples_come_again(fleet: Fleet) -> None:
    app = fleet.start()
    episode = []
    for value in (85, 85, 85, 85, 85, 85, 60):
        episode.append(report(app, "inv-101", value))
        fleet.clock.advance(minutes=1)
    episode.append(fault("inv-101", "E021", fleet.clock.now()))
    episode.append(fault("inv-101", "OK", fleet.clock.advance(minutes=1)))
    ingest(app, episode[-2:])
    assert [a.state for a in alerts(app)] == ["resolved", "resolved"]
    before = totals(app)

    fleet.clock.advance(minutes=5)
    ingest(app, episode, store=False)

    assert totals(app) == before


def test_it_keeps_a_pending_alert_across_a_restart(fleet: Fleet) -> None:
    first = fleet.start()
    report(first, "inv-101", 85)
    fleet.clock.advance(minutes=3)
    report(first, "inv-101", 86)
    fleet.stop(first)

    fleet.clock.advance(minutes=2)
    second = fleet.start()
    report(second, "inv-101", 87)

    (alert,) = alerts(second)
    assert alert.state == "firing"
    assert alert.firing_since == START + timedelta(minutes=5)


def test_it_forgets_what_a_rolled_back_transaction_decided(fleet: Fleet) -> None:
    app = fleet.start()

    def failing_batch() -> None:
        with app.sessions.begin() as session:
            app.monitors.on_samples(session, [temperature("inv-103", 95, START)], START)
            raise RuntimeError("the batch could not be committed")

    with pytest.raises(RuntimeError):
        failing_batch()
    report(app, "inv-103", 96)

    (alert,) = alerts(app)
    assert alert.state == "firing"
    assert alert.last_value == 96


def test_it_forgets_what_a_rolled_back_savepoint_decided_and_keeps_the_rest(
    fleet: Fleet,
) -> None:
    # The ingester runs the monitors in a savepoint: a failing hook is rolled back while
    # the readings, and whatever was decided before the savepoint, commit.
    app = fleet.start()

    def failing_hook(session: Session) -> None:
        with session.begin_nested():
            app.monitors.on_samples(session, [fault("inv-101", "E021", START)], START)
            raise RuntimeError("a monitor failed")

    with app.sessions.begin() as session:
        app.monitors.on_samples(session, [temperature("inv-103", 95, START)], START)
        with pytest.raises(RuntimeError):
            failing_hook(session)

    fleet.clock.advance(minutes=1)
    ingest(app, [fault("inv-101", "E021", fleet.clock.now())])
    report(app, "inv-103", 60)

    (faulty,) = alerts(app, "inverter-faults")
    assert faulty.state == "firing"
    (hot,) = alerts(app, OVERHEATING)
    assert hot.state == "resolved"


# -- offline -----------------------------------------------------------------------------


def test_it_alarms_a_silent_device_at_last_seen_plus_after(fleet: Fleet) -> None:
    app = fleet.start()
    fleet.clock.advance(minutes=2)
    report(app, "inv-101", 40)
    last_seen = fleet.clock.now()

    app.monitors.sweep_offline(last_seen + timedelta(minutes=9))
    assert alerts(app, OFFLINE, "inv-101") == []
    app.monitors.sweep_offline(last_seen + timedelta(minutes=47))

    (alert,) = alerts(app, OFFLINE, "inv-101")
    assert alert.state == "firing"
    assert alert.firing_since == last_seen + timedelta(minutes=10)
    assert alert.evidence["last_seen"] == last_seen.isoformat()


def test_it_counts_the_silence_of_a_device_that_never_reported_from_its_registration(
    fleet: Fleet,
) -> None:
    app = fleet.start()
    fleet.clock.advance(minutes=2)
    report(app, "inv-101", 40)

    app.monitors.sweep_offline(START + timedelta(minutes=11))

    assert [a.subject for a in alerts(app, OFFLINE)] == ["inv-102", "inv-103"]
    assert {a.firing_since for a in alerts(app, OFFLINE)} == {START + timedelta(minutes=10)}


def test_it_alarms_a_device_that_fell_silent_before_a_restart(fleet: Fleet) -> None:
    first = fleet.start()
    fleet.clock.advance(minutes=2)
    report(first, "inv-101", 40)
    last_seen = fleet.clock.now()
    fleet.stop(first)

    fleet.clock.advance(hours=1)
    second = fleet.start()
    second.monitors.sweep_offline(fleet.clock.now())

    (alert,) = alerts(second, OFFLINE, "inv-101")
    assert alert.firing_since == last_seen + timedelta(minutes=10)


def test_it_resolves_an_offline_alarm_when_the_device_reports_again(fleet: Fleet) -> None:
    app = fleet.start()
    app.monitors.sweep_offline(START + timedelta(minutes=30))
    fleet.clock.advance(minutes=31)

    report(app, "inv-101", 40)
    app.monitors.sweep_offline(START + timedelta(minutes=32))

    (alert,) = alerts(app, OFFLINE, "inv-101")
    assert alert.state == "resolved"
    assert alert.resolved_at == START + timedelta(minutes=31)
    assert [a.state for a in alerts(app, OFFLINE, "inv-102")] == ["firing"]


def test_it_resolves_an_offline_alarm_raised_before_a_restart(fleet: Fleet) -> None:
    first = fleet.start()
    first.monitors.sweep_offline(START + timedelta(minutes=30))
    fleet.stop(first)

    fleet.clock.advance(minutes=31)
    second = fleet.start()
    report(second, "inv-101", 40)

    (alert,) = alerts(second, OFFLINE, "inv-101")
    assert alert.state == "resolved"


def test_it_resolves_an_offline_alarm_when_the_device_reported_to_another_worker(
    fleet: Fleet,
) -> None:
    leader = fleet.start()
    ingester = fleet.start()
    leader.monitors.sweep_offline(START + timedelta(minutes=30))
    fleet.clock.advance(minutes=31)
    report(ingester, "inv-101", 40)

    leader.monitors.sweep_offline(START + timedelta(minutes=32))

    (alert,) = alerts(leader, OFFLINE, "inv-101")
    assert alert.state == "resolved"
    assert alert.resolved_at == START + timedelta(minutes=31)


def test_it_raises_a_new_offline_alarm_after_another_worker_resolved_the_last_one(
    fleet: Fleet,
) -> None:
    leader = fleet.start()
    leader.monitors.sweep_offline(START + timedelta(minutes=30))
    ingester = fleet.start()  # started after the alarm: it knows it is open
    back = fleet.clock.advance(minutes=31)
    report(ingester, "inv-101", 40)

    for minutes in (50, 51, 52):
        leader.monitors.sweep_offline(START + timedelta(minutes=minutes))

    first, second = alerts(leader, OFFLINE, "inv-101")
    assert first.state == "resolved"
    assert second.state == "firing"
    assert second.open_fingerprint == f"{OFFLINE}:inv-101"
    assert second.firing_since == back + timedelta(minutes=10)
    assert transitions(leader, second) == [(None, "firing")]


def _tickets(app: Forewarn) -> list[Ticket]:
    with app.sessions() as session:
        return list(session.scalars(select(Ticket).order_by(Ticket.id)))
