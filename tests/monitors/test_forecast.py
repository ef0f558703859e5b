"""The time-to-limit forecast and the ``requires`` confirmation, through the replay (the
live monitors on the in-memory store) and through the service with ticketing."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from forewarn.backtest import replay
from forewarn.config import parse_config
from forewarn.config.schema import ForecastMonitor
from forewarn.monitors.evaluate import OpenAlert
from forewarn.monitors.forecast import about, evaluate_forecast
from forewarn.service import web_app
from forewarn.store.models import Notification, Ticket
from forewarn.telemetry.sample import Sample
from tests.monitors.fleet import Fleet, alerts, count, ingest, running_fleet
from tests.web.console import sign_in
from tests.web.html import visible_text

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
OPS = "ops-token-0123456789abcdef"
CONFIG = """
customers:
  - {id: c1, name: Marta Silva, phone: "+351912000101"}
sites:
  - {id: s1, name: Silva home, customer: c1, region: west}
devices:
  - {id: pump-1, site: s1, model: AquaMax, kind: pump}
technicians:
  - {id: t1, name: Ana, phone: "+351913000201", skills: [pump], regions: [west]}
monitors:
  - id: reaching-95
    kind: forecast
    metric: temperature
    above: 95
    unit: °C
    horizon: 6h
    window: 3h
    for: 20m
  - id: hot
    kind: threshold
    metric: temperature
    above: 70
    for: 10m
    requires: {rule: reaching-95, within: 2h}
alerting:
  flapping: {changes: 1000}
"""


def rising(hours: float, *, start_value: float = 60.0, per_hour: float = 2.5) -> list[Sample]:
    """Readings every 5 minutes: flat at 60 for 6 h, then rising ``per_hour``."""
    rng = random.Random(4)
    out = []
    for step in range(int(hours * 12)):
        at = START + timedelta(minutes=5 * step)
        climb = max(0.0, (at - START) / timedelta(hours=1) - 6) * per_hour
        value = start_value + climb + rng.gauss(0, 0.4)
        out.append(Sample("pump-1", "temperature", at, received_at=at, value=value))
    return out


def test_a_forecast_fires_when_the_crossing_comes_within_the_horizon_and_says_when() -> None:
    config = parse_config(CONFIG, {})
    report = replay(config, rising(16), timedelta(minutes=1))
    (episode,) = [e for e in report.episodes if e.rule_id == "reaching-95"]
    assert episode.firing_since is not None
    # 60 + 2.5/h from 06:00 reaches 95 at 20:00; six hours before is 14:00, plus the 20
    # minutes of ``for``, and the trend needs some of its 3-hour window to show.
    assert START + timedelta(hours=14) <= episode.firing_since <= START + timedelta(hours=15)


def rule(**settings: Any) -> ForecastMonitor:
    return ForecastMonitor.model_validate(
        {"id": "f", "kind": "forecast", "metric": "temperature", "above": 95, **settings}
    )


def points(values: list[float], every: timedelta = timedelta(minutes=10)) -> list[Any]:
    return [(START + i * every, v) for i, v in enumerate(values)]


def test_the_notice_says_about_how_many_hours_are_left() -> None:
    history = points([80 + i * 0.5 for i in range(19)])  # 3 h at 3 degrees an hour
    last = history[-1]
    verdict = evaluate_forecast(
        rule(horizon="6h", window="3h", unit="°C"),
        history,
        Sample("pump-1", "temperature", last[0], received_at=last[0], value=last[1]),
        None,
    )
    assert verdict.action == "fire"
    # From 89 at 3 degrees an hour: 2 hours to 95.
    assert verdict.evidence["forecast"]["hours"] == 2
    assert "expected to reach 95 °C in about 2 h" in verdict.summary


def test_a_single_wild_reading_does_not_tilt_the_trend() -> None:
    flat = [70.0] * 19
    flat[-2] = 300.0
    history = points(flat)
    last = history[-1]
    verdict = evaluate_forecast(
        rule(horizon="12h", window="3h"),
        history,
        Sample("pump-1", "temperature", last[0], received_at=last[0], value=last[1]),
        None,
    )
    assert verdict.action == "none"


def test_it_clears_only_beyond_the_clear_horizon() -> None:
    firing = OpenAlert("firing", START, START)
    slow = points([80 + i * 0.05 for i in range(19)])  # 0.3/h: 15 degrees take 50 h
    steady = points([80 + i * 0.25 for i in range(19)])  # 1.5/h: about 8 h to go
    verdicts = []
    for history in (steady, slow):
        last = history[-1]
        sample = Sample("pump-1", "temperature", last[0], received_at=last[0], value=last[1])
        verdicts.append(
            evaluate_forecast(rule(horizon="6h", window="3h"), history, sample, firing).action
        )
    assert verdicts == ["none", "resolve"]  # 8 h is within twice the horizon: it holds


def test_minutes_under_an_hour_and_a_half() -> None:
    assert about(timedelta(minutes=42)) == (None, 40)
    assert about(timedelta(hours=4, minutes=20)) == (4, None)


def test_a_forecast_needs_one_limit_and_a_longer_clear_horizon() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        rule(below=10)
    with pytest.raises(ValidationError, match="clear_horizon"):
        rule(horizon="6h", clear_horizon="1h")


@pytest.fixture
def fleet(database_url: str) -> Iterator[Fleet]:
    with running_fleet(database_url, CONFIG, START) as fleet:
        yield fleet


def test_requires_holds_the_ticket_until_the_confirming_rule_fires(fleet: Fleet) -> None:
    app = fleet.start()
    readings = rising(10, start_value=72.0, per_hour=0.5)
    for sample in readings:
        fleet.clock.at = sample.ts
        ingest(app, [sample])
        app.monitors.sweep(sample.ts)
    (hot,) = alerts(app, "hot")
    assert hot.state == "firing"
    assert hot.suppressed_by == "confirmation:reaching-95"
    assert hot.ticket_id is None and count(app, Ticket) == 0
    ops = TestClient(web_app(app, {"FOREWARN_TOKENS": f"ops:{OPS}"}))
    sign_in(ops, OPS)
    assert "waiting for confirmation by reaching-95" in visible_text(ops.get("/alerts").text)
    assert "waiting for confirmation by reaching-95" in visible_text(
        ops.get(f"/alerts/{hot.id}").text
    )

    # The climb steepens: now it will reach 95 within 6 h, the forecast fires and agrees.
    at = readings[-1].ts
    value = readings[-1].value or 0.0
    for _ in range(48):
        at += timedelta(minutes=5)
        value += 0.5
        fleet.clock.at = at
        ingest(app, [Sample("pump-1", "temperature", at, received_at=at, value=value)])
        app.monitors.sweep(at)
    (forecast,) = alerts(app, "reaching-95")
    assert forecast.state == "firing"
    (hot,) = alerts(app, "hot")
    assert hot.ticket_id is not None and hot.suppressed_by is None
    assert count(app, Ticket) == 1  # one episode of the device: one ticket

    # The customer is told when, as the forecast said it when it fired.
    app.sender.drain()
    with app.sessions() as session:
        bodies = session.scalars(
            select(Notification.body).where(
                Notification.recipient_id == "c1", Notification.event == "fault_notice"
            )
        ).all()
    told = forecast.evidence["forecast"]
    when = f"{told['hours']} h" if told["hours"] else f"{told['minutes']} min"
    eta = datetime.fromisoformat(told["expected_at"]) - forecast.firing_since
    assert abs(eta.total_seconds() - told["eta_seconds"]) < 3600
    assert bodies and all(f"expected to reach 95 °C in about {when}" in (b or "") for b in bodies)
