"""Every rule kind beyond the basics, through ``build()`` on SQLite and PostgreSQL:
N in a row, clear duration, pending timers, absence of a metric, rate of change and
fleet-peer deviation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from forewarn.telemetry.sample import Sample
from tests.monitors.fleet import Fleet, alerts, ingest, report, running_fleet, transitions

START = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)

CONFIG = """
customers:
  - {id: c-silva, name: Marta Silva, phone: "+351912000101"}
sites:
  - {id: s-farm, name: Solar farm, customer: c-silva, region: alentejo}
  - {id: s-shed, name: Shed, customer: c-silva, region: alentejo}
devices:
  - {id: inv-1, site: s-farm, model: SunPeak 5K, kind: inverter}
  - {id: inv-2, site: s-farm, model: SunPeak 5K, kind: inverter}
  - {id: inv-3, site: s-farm, model: SunPeak 5K, kind: inverter}
  - {id: inv-4, site: s-farm, model: SunPeak 5K, kind: inverter}
  - {id: inv-5, site: s-farm, model: SunPeak 5K, kind: inverter}
  - {id: inv-6, site: s-farm, model: SunPeak 5K, kind: inverter}
  - {id: inv-7, site: s-shed, model: SunPeak 5K, kind: inverter}
  - {id: bat-1, site: s-shed, model: VoltBank, kind: battery}
monitors:
  - {id: hot-3-in-a-row, kind: threshold, applies_to: {devices: [inv-1]}, metric: temperature,
     above: 80, count: 3}
  - {id: hot-for-5m, kind: threshold, applies_to: {devices: [inv-2]}, metric: temperature,
     above: 80, clear: 70, for: 5m, clear_for: 10m}
  - {id: no-soc, kind: offline, applies_to: {kinds: [battery]}, metric: soc, after: 15m}
  - {id: heating-fast, kind: rate, applies_to: {devices: [inv-3]}, metric: temperature,
     rise: 30, per: 1h, window: 10m}
  - {id: underperforming, kind: fleet_peer, applies_to: {kinds: [inverter]}, metric: power,
     deviations: 3, min_relative: 0.2, min_cohort: 5, for: 10m, fresh: 15m}
alerting:
  flapping: {changes: 1000}
"""


@pytest.fixture
def fleet(database_url: str) -> Iterator[Fleet]:
    with running_fleet(database_url, CONFIG, START) as fleet:
        yield fleet


def reading(device: str, metric: str, value: float, at: datetime) -> Sample:
    return Sample(device, metric, at, received_at=at, value=value)


def states(fleet: Fleet, rule: str) -> dict[str, str]:
    return {a.subject: a.state for a in alerts(fleet.apps[-1], rule) if a.open_fingerprint}


# -- threshold variants ------------------------------------------------------------------


def test_n_in_a_row_fires_only_on_the_nth_consecutive_reading(fleet: Fleet) -> None:
    app = fleet.start()
    for value in (85, 85, 60, 85, 85):
        report(app, "inv-1", value)
        fleet.clock.advance(seconds=10)
    assert states(fleet, "hot-3-in-a-row") == {"inv-1": "pending"}

    report(app, "inv-1", 86)

    (alert,) = [a for a in alerts(app, "hot-3-in-a-row") if a.state == "firing"]
    assert alert.firing_since == fleet.clock.now()
    assert alert.evidence["in_a_row"] == 3


def test_a_clear_duration_resolves_only_after_the_value_stayed_clear(fleet: Fleet) -> None:
    app = fleet.start()
    report(app, "inv-2", 90)
    fleet.clock.advance(minutes=6)
    report(app, "inv-2", 90)
    for value in (60, 85, 60, 60, 60):
        fleet.clock.advance(minutes=4)
        report(app, "inv-2", value)

    (alert,) = alerts(app, "hot-for-5m")
    assert alert.state == "firing"  # clear for only 8 minutes since the relapse
    fleet.clock.advance(minutes=4)
    report(app, "inv-2", 60)

    (alert,) = alerts(app, "hot-for-5m")
    assert alert.state == "resolved"
    assert alert.resolved_at == fleet.clock.now()


def test_a_pending_alert_fires_on_time_when_its_device_falls_silent_across_a_restart(
    fleet: Fleet,
) -> None:
    first = fleet.start()
    report(first, "inv-2", 90)
    fleet.stop(first)

    fleet.clock.advance(minutes=5, seconds=30)
    second = fleet.start()
    second.monitors.sweep(fleet.clock.now())

    (alert,) = alerts(second, "hot-for-5m")
    assert alert.state == "firing"
    assert alert.firing_since == START + timedelta(minutes=5)
    assert alert.evidence["fired_by"] == "timer"
    assert transitions(second, alert) == [(None, "pending"), ("pending", "firing")]


def test_a_pending_alert_whose_value_returned_on_another_worker_does_not_fire(
    fleet: Fleet,
) -> None:
    first, second = fleet.start(), fleet.start()
    report(first, "inv-2", 90)
    fleet.clock.advance(minutes=2)
    report(second, "inv-2", 60)

    first.monitors.sweep(fleet.clock.advance(minutes=10))

    (alert,) = alerts(first, "hot-for-5m")
    assert alert.state == "resolved"
    assert alert.firing_since is None


# -- absence of a metric -----------------------------------------------------------------


def test_a_device_that_stops_sending_one_metric_is_alarmed_at_the_timeout(fleet: Fleet) -> None:
    app = fleet.start()
    ingest(app, [reading("bat-1", "soc", 80, START)])
    for minute in range(1, 30):
        ingest(app, [reading("bat-1", "temperature", 25, START + timedelta(minutes=minute))])
    app.monitors.sweep(START + timedelta(minutes=14))
    assert states(fleet, "no-soc") == {}

    app.monitors.sweep(START + timedelta(minutes=16))

    (alert,) = alerts(app, "no-soc")
    assert alert.firing_since == START + timedelta(minutes=15)
    assert alert.evidence["metric"] == "soc"
    fleet.clock.advance(minutes=40)
    ingest(app, [reading("bat-1", "soc", 79, fleet.clock.now())])
    assert alerts(app, "no-soc")[0].state == "resolved"


# -- rate of change ----------------------------------------------------------------------


def test_a_temperature_rising_faster_than_the_limit_fires_and_a_steady_one_does_not(
    fleet: Fleet,
) -> None:
    app = fleet.start()
    for minute in range(12):  # steady 40 degrees with noise
        ingest(app, [reading("inv-3", "temperature", 40 + (minute % 2), fleet.clock.now())])
        fleet.clock.advance(minutes=1)
    assert alerts(app, "heating-fast") == []

    for minute in range(12):  # +1 degree a minute = 60 per hour
        ingest(app, [reading("inv-3", "temperature", 41 + minute, fleet.clock.now())])
        fleet.clock.advance(minutes=1)

    (alert,) = alerts(app, "heating-fast")
    assert alert.state == "firing"
    assert alert.evidence["rate"] > 30


# -- fleet peers -------------------------------------------------------------------------


def _power(app_fleet: Fleet, values: dict[str, float]) -> None:
    app = app_fleet.apps[-1]
    now = app_fleet.clock.now()
    ingest(app, [reading(d, "power", v, now) for d, v in values.items()])


def test_an_inverter_far_below_its_peers_for_a_while_is_alarmed(fleet: Fleet) -> None:
    app = fleet.start()
    normal = {"inv-1": 4010, "inv-2": 3980, "inv-3": 4050, "inv-4": 3990, "inv-5": 4020}
    for _ in range(3):
        _power(fleet, {**normal, "inv-6": 2400, "inv-7": 1000})  # inv-7: alone at its site
        app.monitors.sweep(fleet.clock.now())
        fleet.clock.advance(minutes=6)
    _power(fleet, {**normal, "inv-6": 2400, "inv-7": 1000})
    app.monitors.sweep(fleet.clock.now())

    (alert,) = alerts(app, "underperforming")
    assert alert.subject == "inv-6"
    assert alert.state == "firing"
    assert alert.evidence["cohort_size"] == 6  # pending is not alarming yet: still a peer
    assert alert.evidence["cohort_median"] == pytest.approx(4000)
    assert alert.firing_since == START + timedelta(minutes=12)  # pending at 0, for: 10m

    fleet.clock.advance(minutes=1)
    _power(fleet, {**normal, "inv-6": 3970})
    app.monitors.sweep(fleet.clock.now())
    assert alerts(app, "underperforming")[0].state == "resolved"


def test_ordinary_spread_between_peers_opens_nothing(fleet: Fleet) -> None:
    app = fleet.start()
    for minute in range(30):
        wobble = (minute % 3) * 40
        _power(
            fleet,
            {
                "inv-1": 4000 + wobble,
                "inv-2": 3900,
                "inv-3": 4100 - wobble,
                "inv-4": 3850,
                "inv-5": 4150,
                "inv-6": 3700 + wobble,
            },
        )
        app.monitors.sweep(fleet.clock.now())
        fleet.clock.advance(minutes=1)

    assert alerts(app, "underperforming") == []


def test_a_cohort_smaller_than_the_minimum_decides_nothing(fleet: Fleet) -> None:
    app = fleet.start()
    for _ in range(4):
        _power(fleet, {"inv-1": 4000, "inv-2": 4000, "inv-3": 4000, "inv-4": 100})
        app.monitors.sweep(fleet.clock.now())
        fleet.clock.advance(minutes=5)

    assert alerts(app, "underperforming") == []
