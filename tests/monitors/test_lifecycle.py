"""The alert lifecycle through ``build()``: flapping, silences and maintenance windows,
inhibition, work-order suppression, acknowledge, and several workers on one store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from forewarn.config.schema import SilenceSettings
from forewarn.store.models import Alert, AlertEvent, Notification, Ticket
from tests.monitors.fleet import (
    Fleet,
    alerts,
    count,
    fault,
    ingest,
    report,
    running_fleet,
    temperature,
    transitions,
)

START = datetime(2026, 11, 3, 3, 0, tzinfo=UTC)
HOT = "inverter-overheating"
FAULTS = "inverter-faults"
OFFLINE = "device-offline"

CONFIG = """
customers:
  - {id: c-silva, name: Marta Silva, phone: "+351912000101", email: marta@example.com}
sites:
  - {id: s-cascais, name: Silva home, customer: c-silva, region: lisbon-west,
     timezone: Europe/Lisbon, location: {lat: 38.697, lon: -9.421}}
devices:
  - {id: gw-1, site: s-cascais, model: EdgeGW, kind: gateway}
  - {id: inv-101, site: s-cascais, model: SunPeak 5K, kind: inverter, parent: gw-1,
     tags: [rooftop]}
  - {id: inv-102, site: s-cascais, model: SunPeak 5K, kind: inverter, parent: gw-1}
  - {id: inv-103, site: s-cascais, model: SunPeak 5K, kind: inverter}
technicians:
  - {id: t-ana, name: Ana Costa, phone: "+351913000201", email: ana@example.com,
     skills: [inverter, gateway], regions: [lisbon-west]}
monitors:
  - {id: inverter-overheating, kind: threshold, applies_to: {kinds: [inverter]},
     metric: temperature, above: 80, clear: 70}
  - id: inverter-faults
    kind: fault_code
    codes:
      E021: {severity: critical, description: grid isolation fault}
  - {id: device-offline, kind: offline, after: 10m}
alerting:
  flapping: {window: 1h, changes: 4, settle: 20m}
  inhibit:
    - {source_rule: device-offline, source_kinds: [gateway], target_rules: [device-offline]}
"""

SILENCED = CONFIG.split("  - {id: device-offline")[0] + (
    """alerting:
  flapping: {window: 1h, changes: 1000}
  silences:
    - id: night-maintenance
      comment: inverter firmware upgrades, every night
      devices: [inv-103]
      rules: [inverter-faults]
      hours: "00:30-03:00"
"""
)


@pytest.fixture
def fleet(database_url: str) -> Iterator[Fleet]:
    with running_fleet(database_url, CONFIG, START) as fleet:
        yield fleet


def _tickets(fleet: Fleet, device: str | None = None) -> list[Ticket]:
    query = select(Ticket).order_by(Ticket.id)
    if device is not None:
        query = query.where(Ticket.device_id == device)
    with fleet.apps[-1].sessions() as session:
        return list(session.scalars(query))


def _notices(fleet: Fleet, ticket: Ticket) -> int:
    with fleet.apps[-1].sessions() as session:
        rows = session.scalars(select(Notification.id).where(Notification.ticket_id == ticket.id))
        return len(rows.all())


# -- flapping ----------------------------------------------------------------------------


def test_a_flapping_sensor_opens_one_ticket_not_twenty_and_resolves_once(fleet: Fleet) -> None:
    app = fleet.start()
    for _ in range(20):
        report(app, "inv-103", 85)
        fleet.clock.advance(minutes=1)
        report(app, "inv-103", 60)
        fleet.clock.advance(minutes=1)
    (ticket,) = _tickets(fleet, "inv-103")
    notices = _notices(fleet, ticket)

    *earlier, last = alerts(app, HOT)
    assert len(earlier) <= 2
    assert last.state == "flapping"
    assert last.condition == "clear"
    assert len(_tickets(fleet, "inv-103")) == 1
    app.monitors.sweep(fleet.clock.advance(minutes=18))
    assert alerts(app, HOT)[-1].state == "flapping"  # not settled yet

    app.monitors.sweep(fleet.clock.advance(minutes=2))
    app.monitors.sweep(fleet.clock.advance(minutes=30))

    last = alerts(app, HOT)[-1]
    assert last.state == "resolved"
    assert last.open_fingerprint is None
    assert [t for t in transitions(app, last) if t[1] == "resolved"] == [("flapping", "resolved")]
    assert all(a.state == "resolved" for a in alerts(app, HOT))
    assert len(_tickets(fleet, "inv-103")) == 1
    assert _notices(fleet, ticket) <= notices + 2  # at most one all-clear per recipient


def test_a_flapping_alert_that_settles_while_firing_is_announced_once(fleet: Fleet) -> None:
    app = fleet.start()
    for value in (85, 60, 85, 60, 85, 60, 85):
        report(app, "inv-103", value)
        fleet.clock.advance(minutes=1)
    flapping = alerts(app, HOT)[-1]
    assert flapping.state == "flapping"
    assert flapping.condition == "firing"

    for _ in range(25):
        report(app, "inv-103", 90)
        fleet.clock.advance(minutes=1)
        app.monitors.sweep(fleet.clock.now())

    settled = alerts(app, HOT)[-1]
    assert settled.id == flapping.id
    assert settled.state == "firing"
    assert transitions(app, settled)[-1] == ("flapping", "firing")
    assert len(_tickets(fleet, "inv-103")) == 1


# -- silences and maintenance windows ----------------------------------------------------


def test_a_maintenance_window_across_a_dst_change_silences_exactly_its_local_hours(
    database_url: str,
) -> None:
    # Lisbon springs forward at 01:00 WET on 2027-03-28: the window 00:30-03:00 local is
    # 00:30-02:00 UTC that night (90 real minutes) and 00:30-03:00 UTC the night before.
    night = datetime(2027, 3, 27, 23, 0, tzinfo=UTC)
    with running_fleet(database_url, SILENCED, night) as fleet:
        app = fleet.start()
        held: list[datetime] = []
        announced: list[datetime] = []
        for _ in range(20):  # every 15 minutes from 23:00 to 03:45 UTC
            at = fleet.clock.now()
            ingest(app, [fault("inv-103", "E021", at)])
            (alert,) = [a for a in alerts(app, FAULTS) if a.open_fingerprint]
            (held if alert.suppressed_by else announced).append(at)
            assert alert.suppressed_by in (None, "silence:night-maintenance")
            ingest(app, [fault("inv-103", "OK", fleet.clock.advance(minutes=1))])
            fleet.clock.advance(minutes=14)

    assert held == [
        datetime(2027, 3, 28, 0, 30, tzinfo=UTC) + timedelta(minutes=15 * i) for i in range(6)
    ]
    assert len(announced) == 14


def test_a_silenced_alert_is_recorded_but_opens_no_ticket_and_notifies_nobody(
    database_url: str,
) -> None:
    night = datetime(2026, 11, 4, 1, 0, tzinfo=UTC)  # 01:00 in Lisbon (WET)
    with running_fleet(database_url, SILENCED, night) as fleet:
        app = fleet.start()
        ingest(app, [fault("inv-103", "E021", night)])

        (alert,) = alerts(app, FAULTS)
        assert alert.state == "firing"
        assert alert.suppressed_by == "silence:night-maintenance"
        assert alert.notified_at is None
        assert count(app, Ticket) == 0
        assert count(app, Notification) == 0
        assert transitions(app, alert) == [(None, "firing")]


def test_an_alert_still_firing_when_its_window_ends_is_announced_then(database_url: str) -> None:
    night = datetime(2026, 11, 4, 2, 30, tzinfo=UTC)
    with running_fleet(database_url, SILENCED, night) as fleet:
        app = fleet.start()
        ingest(app, [fault("inv-103", "E021", night)])
        app.monitors.sweep(fleet.clock.advance(minutes=20))
        assert count(app, Ticket) == 0

        app.monitors.sweep(fleet.clock.advance(minutes=15))  # 03:05 local

        (alert,) = alerts(app, FAULTS)
        assert alert.suppressed_by is None
        assert alert.notified_at == fleet.clock.now()
        assert count(app, Ticket) == 1


def test_a_silence_resolved_inside_its_window_never_notifies_its_resolution(
    database_url: str,
) -> None:
    night = datetime(2026, 11, 4, 1, 0, tzinfo=UTC)
    with running_fleet(database_url, SILENCED, night) as fleet:
        app = fleet.start()
        ingest(app, [fault("inv-103", "E021", night)])
        ingest(app, [fault("inv-103", "OK", fleet.clock.advance(minutes=5))])
        app.monitors.sweep(fleet.clock.advance(hours=4))

        (alert,) = alerts(app, FAULTS)
        assert alert.state == "resolved"
        assert count(app, Ticket) == 0
        assert count(app, Notification) == 0


def test_silences_created_through_the_api_apply_and_are_reported(fleet: Fleet) -> None:
    app = fleet.start()
    app.monitors.add_silence(
        SilenceSettings(
            id="roof-work",
            tags=("rooftop",),
            starts=START,
            ends=START + timedelta(minutes=50),
            created_by="ops:joana",
        ),
        START,
    )
    app.monitors.add_silence(
        SilenceSettings(id="typo", devices=("inv-999",), ends=START + timedelta(days=1)),
        START,
    )
    report(app, "inv-101", 95)
    report(app, "inv-102", 95)

    held = {a.subject: a.suppressed_by for a in alerts(app, HOT)}
    assert held == {"inv-101": "silence:roof-work", "inv-102": None}
    statuses = {s.silence.id: s for s in app.monitors.silence_report(START)}
    assert statuses["roof-work"].matched_devices == 1
    assert statuses["roof-work"].active
    assert statuses["roof-work"].expiring  # ends within the hour
    assert statuses["typo"].matches_nothing
    assert not statuses["typo"].expiring


def test_a_silence_without_an_end_is_refused() -> None:
    with pytest.raises(ValueError, match="must end"):
        SilenceSettings(id="forever", sites=("s-cascais",))


# -- inhibition --------------------------------------------------------------------------


def test_a_gateway_offline_inhibits_the_offline_alarms_of_the_devices_behind_it(
    fleet: Fleet,
) -> None:
    app = fleet.start()
    for device in ("gw-1", "inv-101", "inv-102", "inv-103"):
        report(app, device, 40)

    app.monitors.sweep(fleet.clock.advance(minutes=11))

    held = {a.subject: a.suppressed_by for a in alerts(app, OFFLINE)}
    assert held == {
        "gw-1": None,
        "inv-101": f"inhibited:{OFFLINE}:gw-1",
        "inv-102": f"inhibited:{OFFLINE}:gw-1",
        "inv-103": None,  # not behind the gateway
    }
    assert {t.device_id for t in _tickets(fleet)} == {"gw-1", "inv-103"}


def test_a_device_still_silent_after_its_gateway_returns_is_announced(fleet: Fleet) -> None:
    app = fleet.start()
    app.monitors.sweep(fleet.clock.advance(minutes=11))
    report(app, "gw-1", 1)
    report(app, "inv-102", 40)

    app.monitors.sweep(fleet.clock.advance(minutes=1))

    states = {a.subject: (a.state, a.suppressed_by) for a in alerts(app, OFFLINE)}
    assert states["gw-1"] == ("resolved", None)
    assert states["inv-102"][0] == "resolved"
    assert states["inv-101"] == ("firing", None)
    assert "inv-101" in {t.device_id for t in _tickets(fleet)}
    assert "inv-102" not in {t.device_id for t in _tickets(fleet)}


# -- work orders and acknowledge ---------------------------------------------------------


def test_a_new_alert_on_a_device_being_worked_attaches_and_notifies_nobody(
    fleet: Fleet,
) -> None:
    app = fleet.start()
    report(app, "inv-103", 95)
    (ticket,) = _tickets(fleet)
    with app.sessions.begin() as session:
        session.execute(update(Ticket).where(Ticket.id == ticket.id).values(status="on_site"))
    notices = count(app, Notification)

    ingest(app, [fault("inv-103", "E021", fleet.clock.advance(minutes=1))])

    (alert,) = alerts(app, FAULTS)
    assert alert.suppressed_by == f"work_order:{ticket.id}"
    assert alert.ticket_id == ticket.id
    assert count(app, Ticket) == 1
    assert count(app, Notification) == notices


def test_an_open_alert_is_acknowledged_once(fleet: Fleet) -> None:
    app = fleet.start()
    report(app, "inv-103", 95)
    (alert,) = alerts(app, HOT)

    assert app.monitors.acknowledge(alert.id, "ops:joana", fleet.clock.now(), "on it")
    assert not app.monitors.acknowledge(alert.id, "ops:rui", fleet.clock.now())

    (acked,) = alerts(app, HOT)
    assert acked.acknowledged_by == "ops:joana"
    assert acked.state == "firing"
    with app.sessions() as session:
        evidence = session.scalars(
            select(AlertEvent.evidence).where(AlertEvent.alert_id == alert.id)
        ).all()
    assert evidence[-1]["acknowledged_by"] == "ops:joana"


# -- several workers ---------------------------------------------------------------------


def test_a_worker_resolves_an_alert_another_worker_opened(fleet: Fleet) -> None:
    first = fleet.start()
    second = fleet.start()  # started before the alert existed
    report(first, "inv-103", 95)
    fleet.clock.advance(minutes=1)
    ingest(second, [fault("inv-103", "E021", fleet.clock.now())])
    ingest(first, [fault("inv-103", "OK", fleet.clock.advance(minutes=1))])

    report(second, "inv-103", 60)

    assert [a.state for a in alerts(first)] == ["resolved", "resolved"]


def test_the_loser_of_a_race_to_open_an_alert_keeps_the_rest_of_its_batch(
    postgres_url: str,
) -> None:
    # SQLite serialises writers, so only PostgreSQL can interleave two workers like this.
    with running_fleet(postgres_url, CONFIG, START) as fleet:
        winner, loser = fleet.start(), fleet.start()
        raced: list[bool] = []

        def winner_commits_first(session: Session, *_: object) -> None:
            if not raced and any(isinstance(o, Alert) for o in session.new):
                raced.append(True)
                ingest(winner, [fault("inv-101", "E021", START)], store=False)

        with loser.sessions.begin() as session:
            event.listen(session, "before_flush", winner_commits_first)
            loser.monitors.on_samples(
                session, [fault("inv-101", "E021", START), temperature("inv-103", 95, START)], START
            )

        assert raced
        assert [a.state for a in alerts(loser, FAULTS)] == ["firing"]
        assert [a.state for a in alerts(loser, HOT)] == ["firing"]
        assert sorted(t.device_id or "" for t in _tickets(fleet)) == ["inv-101", "inv-103"]


def test_the_offline_sweep_and_the_rule_agree_on_the_exact_timeout(fleet: Fleet) -> None:
    app = fleet.start()
    report(app, "inv-103", 40)
    deadline = fleet.clock.now() + timedelta(minutes=10)

    app.monitors.sweep_offline(deadline - timedelta(microseconds=1))
    assert alerts(app, OFFLINE, "inv-103") == []
    app.monitors.sweep_offline(deadline)

    (alert,) = alerts(app, OFFLINE, "inv-103")
    assert alert.firing_since == deadline
