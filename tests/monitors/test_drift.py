"""The drift rule (a moving average against the device's own baseline): the pure evaluator,
then through ``build()`` and ingest on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from forewarn.config.schema import DriftMonitor
from forewarn.monitors.evaluate import OpenAlert
from forewarn.monitors.trends import Average, evaluate_drift
from forewarn.telemetry.sample import Sample
from tests.monitors.fleet import Fleet, alerts, ingest, running_fleet

T0 = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


def drift(**settings: Any) -> DriftMonitor:
    return DriftMonitor.model_validate(
        {
            "id": "drifting",
            "kind": "drift",
            "metric": "temperature",
            "window": "30m",
            "baseline": "6h",
            **settings,
        }
    )


def reading(value: float, at: datetime) -> Sample:
    return Sample("inv-4", "temperature", at, received_at=at, value=value)


def baseline_of(mean: float, count: int = 36) -> Average:
    return Average(mean, count, T0 - timedelta(hours=6, minutes=30))


def test_it_fires_when_the_moving_average_drifts_beyond_the_limit() -> None:
    verdict = evaluate_drift(
        drift(by=5), Average(46.0, 4), baseline_of(40.0), reading(47, T0), None
    )

    assert verdict.action == "fire"
    assert verdict.evidence["drift"] == pytest.approx(6.0)
    assert "drifted +6" in verdict.summary


def test_it_stays_quiet_within_the_limit() -> None:
    verdict = evaluate_drift(
        drift(by=5), Average(44.0, 4), baseline_of(40.0), reading(44, T0), None
    )
    assert verdict.action == "none"


def test_a_relative_limit_is_a_fraction_of_the_baseline_and_both_limits_must_be_passed() -> None:
    rule = drift(by=1, by_relative=0.2)
    below = evaluate_drift(rule, Average(110.0, 4), baseline_of(100.0), reading(110, T0), None)
    beyond = evaluate_drift(rule, Average(121.0, 4), baseline_of(100.0), reading(121, T0), None)
    assert (below.action, beyond.action) == ("none", "fire")


def test_the_direction_decides_which_drift_counts() -> None:
    down = Average(30.0, 4)
    assert (
        evaluate_drift(
            drift(by=5, direction="above"), down, baseline_of(40), reading(30, T0), None
        ).action
        == "none"
    )
    assert (
        evaluate_drift(
            drift(by=5, direction="below"), down, baseline_of(40), reading(30, T0), None
        ).action
        == "fire"
    )


def test_too_few_readings_or_a_baseline_too_short_decide_nothing() -> None:
    rule = drift(by=5, min_readings=3)
    few = evaluate_drift(rule, Average(50.0, 2), baseline_of(40.0), reading(50, T0), None)
    young = evaluate_drift(
        rule, Average(50.0, 4), Average(40.0, 20, T0 - timedelta(hours=1)), reading(50, T0), None
    )
    assert (few.action, young.action) == ("none", "none")


def test_it_pends_with_a_hold_and_resolves_when_the_average_returns() -> None:
    rule = drift(by=5, **{"for": "10m"})
    pending = evaluate_drift(rule, Average(50.0, 4), baseline_of(40), reading(50, T0), None)
    firing = OpenAlert("firing", T0, T0)
    back = evaluate_drift(
        rule, Average(41.0, 4), baseline_of(40), reading(41, T0 + timedelta(minutes=1)), firing
    )
    assert (pending.action, back.action) == ("pend", "resolve")


def test_it_never_decides_on_a_stale_reading() -> None:
    stale = Sample("inv-4", "temperature", T0, received_at=T0, value=60, stale=True)
    assert (
        evaluate_drift(drift(by=5), Average(60.0, 4), baseline_of(40), stale, None).action == "none"
    )


def test_a_drift_rule_needs_a_limit() -> None:
    with pytest.raises(ValidationError, match="by_relative"):
        drift()


def test_the_average_of_points_counts_them_and_keeps_the_oldest_time() -> None:
    average = Average.of([(T0, 1.0), (T0 + timedelta(minutes=1), 3.0)])
    assert average == Average(2.0, 2, T0)
    assert Average.of([]) == Average(None, 0)


CONFIG = """
customers:
  - {id: c-silva, name: Marta Silva, phone: "+351912000101"}
sites:
  - {id: s-farm, name: Solar farm, customer: c-silva, region: alentejo}
devices:
  - {id: inv-4, site: s-farm, model: SunPeak 5K, kind: inverter}
monitors:
  - {id: drifting, kind: drift, metric: temperature, window: 30m, baseline: 6h, by: 5,
     for: 10m}
alerting:
  flapping: {changes: 1000}
"""


@pytest.fixture
def fleet(database_url: str) -> Iterator[Fleet]:
    with running_fleet(database_url, CONFIG, T0) as fleet:
        yield fleet


def test_a_slow_drift_from_the_devices_own_baseline_fires_after_its_hold(fleet: Fleet) -> None:
    app = fleet.start()
    for step in range(42):  # seven hours around 40 degrees
        ingest(app, [reading(40 + (step % 3 - 1) * 0.5, fleet.clock.now())])
        fleet.clock.advance(minutes=10)
    assert alerts(app, "drifting") == []

    for _ in range(6):  # then 48 degrees: the 30-minute average leaves the baseline
        ingest(app, [reading(48, fleet.clock.now())])
        fleet.clock.advance(minutes=10)

    (alert,) = alerts(app, "drifting")
    assert alert.state == "firing"
    assert alert.evidence["baseline"] == pytest.approx(40, abs=0.5)
    assert alert.evidence["moving_average"] > 45
