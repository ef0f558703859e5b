"""The learned-baseline rule: a band learned from the device's own history, judged through
the replay (the live monitors on the in-memory store) and, for restarts and the SQL
learning pass, through the service on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from forewarn.backtest import replay
from forewarn.config import parse_config
from forewarn.config.schema import BaselineMonitor
from forewarn.monitors.baseline import Band, Bucket, learn, limits
from forewarn.telemetry.sample import Sample
from tests.monitors.fleet import Fleet, alerts, ingest, running_fleet

START = datetime(2026, 9, 7, 0, 0, tzinfo=UTC)
CONFIG = """
customers:
  - {id: c1, name: Marta Silva, phone: "+351912000101"}
sites:
  - {id: s1, name: Silva home, customer: c1, region: west}
devices:
  - {id: steady, site: s1, model: SunPeak 5K, kind: inverter}
  - {id: failing, site: s1, model: SunPeak 5K, kind: inverter}
  - {id: serviced, site: s1, model: SunPeak 5K, kind: inverter}
monitors:
  - id: learned
    kind: baseline
    metric: temperature
    direction: above
    deviations: 4
    seasonality: daily
    window: 14d
    warmup: 3d
    for: 30m
alerting:
  silences:
    - {id: service-day, devices: [serviced], starts: "2026-09-20T06:00:00+00:00",
       ends: "2026-09-21T06:00:00+00:00", comment: planned shutdown and restart}
"""


def season(device: str, at: datetime, rng: random.Random) -> float:
    """A daily cycle (warm afternoons) on a normal range that rises 10 % a month."""
    days = (at - START) / timedelta(days=1)
    hour = at.hour + at.minute / 60
    normal = 50 * (1 + 0.10 * days / 30) + 6 * math.sin((hour - 9) / 24 * 2 * math.pi)
    return normal + rng.gauss(0, 0.6)


def history(days: int, *, failing_from: datetime | None = None) -> list[Sample]:
    rng = random.Random(15)
    out = []
    for step in range(days * 24 * 6):
        at = START + timedelta(minutes=10 * step)
        for device in ("steady", "failing", "serviced"):
            value = season(device, at, rng)
            if device == "failing" and failing_from is not None and at >= failing_from:
                value += 0.4 * (at - failing_from) / timedelta(hours=1)  # a bearing wearing out
            if device == "serviced" and datetime(2026, 9, 20, 8, tzinfo=UTC) <= at < datetime(
                2026, 9, 20, 20, tzinfo=UTC
            ):
                value = 20.0 + rng.gauss(0, 0.5)  # shut down for the service: ambient
            out.append(Sample(device, "temperature", at, received_at=at, value=value))
    return out


def test_a_device_whose_normal_range_drifts_raises_nothing_while_a_degradation_fires() -> None:
    config = parse_config(CONFIG, {})
    failing_from = START + timedelta(days=26)
    report = replay(config, history(28, failing_from=failing_from), timedelta(minutes=1))

    fired = [e for e in report.episodes if e.firing_since is not None]
    assert {e.subject for e in fired} == {"failing"}
    (episode,) = fired
    assert episode.firing_since is not None
    # The drift of 0.4 degrees an hour leaves the band within a day, long before the
    # 2 days of wear would end in a failure.
    assert failing_from < episode.firing_since < failing_from + timedelta(hours=20)


def test_a_planned_shutdown_in_a_silence_neither_alarms_nor_teaches_the_band() -> None:
    config = parse_config(CONFIG.replace("direction: above", "direction: both"), {})
    report = replay(config, history(22), timedelta(minutes=1))
    assert [e for e in report.episodes if e.subject == "serviced" and e.firing_since] == [
        e
        for e in report.episodes
        if e.subject == "serviced" and e.firing_since and e.suppressed_by == "silence:service-day"
    ]
    assert not [e for e in report.episodes if e.subject != "serviced" and e.firing_since]


def rule(**settings: Any) -> BaselineMonitor:
    return BaselineMonitor.model_validate(
        {"id": "learned", "kind": "baseline", "metric": "temperature", **settings}
    )


def test_the_band_is_not_used_before_the_warm_up_and_a_spike_barely_moves_it() -> None:
    daily = rule(warmup="3d")
    band = None
    for _ in range(2):
        band = learn(daily, band, Bucket(6, 6 * 50.0, 6 * 50.0**2 + 6 * 1.0))
    assert limits(daily, band) is None  # two days of each hour: still warming up
    band = learn(daily, band, Bucket(6, 6 * 50.0, 6 * 50.0**2 + 6 * 1.0))
    assert band is not None and limits(daily, band) is not None
    spiked = learn(daily, band, Bucket(6, 6 * 500.0, 6 * 500.0**2))
    assert spiked.center - band.center <= band.spread  # clamped to three deviations, weighted


def test_a_baseline_rule_checks_its_window_and_hysteresis() -> None:
    with pytest.raises(ValidationError, match="two hours per slot"):
        rule(seasonality="weekly", window="7d")
    with pytest.raises(ValidationError, match="clear_deviations"):
        rule(deviations=3, clear_deviations=4)


def test_an_unknown_confirming_rule_is_a_config_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from forewarn.cli import app as cli

    (tmp_path / "forewarn.yaml").write_text(
        CONFIG.replace("    for: 30m\n", "    for: 30m\n    requires: {rule: nosuch}\n")
    )
    result = CliRunner().invoke(
        cli,
        ["check", "-c", str(tmp_path / "forewarn.yaml")],
        env={"FOREWARN_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"},
    )
    assert result.exit_code == 2
    assert "monitors[0].requires.rule: unknown monitor 'nosuch'" in result.output


SQL_CONFIG = (
    CONFIG.replace("warmup: 3d", "warmup: 6h")
    .replace("window: 14d", "window: 2d")
    .replace("seasonality: daily", "seasonality: none")
)
T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)


@pytest.fixture
def fleet(database_url: str) -> Iterator[Fleet]:
    with running_fleet(database_url, SQL_CONFIG, T0) as fleet:
        yield fleet


def test_the_learned_band_survives_a_restart(fleet: Fleet) -> None:
    app = fleet.start()
    rng = random.Random(3)
    for _ in range(12 * 4):  # twelve hours, a reading every 15 minutes, swept as live
        at = fleet.clock.now()
        ingest(app, [Sample("steady", "temperature", at, at, 40 + rng.gauss(0, 0.5))])
        fleet.clock.advance(minutes=15)
        app.monitors.sweep(fleet.clock.now())
    with app.sessions() as session:
        from sqlalchemy import func, select

        from forewarn.store.baselines import BaselineBand

        learned = session.scalar(select(func.count()).select_from(BaselineBand))
    assert learned == 1  # one band for all hours (no seasonality)
    assert alerts(app, "learned") == []
    fleet.stop(app)

    again = fleet.start()
    at = fleet.clock.now()
    ingest(again, [Sample("steady", "temperature", at, at, 55.0)])
    (alert,) = alerts(again, "learned")
    assert alert.state == "pending"
    assert alert.evidence["band"]["high"] < 45
    assert alert.evidence["learned_hours"] == 11  # the last hour settles after 12:02


def test_the_band_learns_the_same_in_memory_and_on_sql(tmp_path: Path) -> None:
    config = parse_config(SQL_CONFIG, {"FOREWARN_DATABASE_URL": "sqlite://"})
    readings = history(2, failing_from=START + timedelta(days=1))
    in_memory = replay(config, readings, timedelta(minutes=1))
    on_sql = replay(
        config, readings, timedelta(minutes=1), scratch_url=f"sqlite:///{tmp_path / 's.db'}"
    )
    assert in_memory.episodes == on_sql.episodes
    assert any(e.rule_id == "learned" and e.firing_since for e in in_memory.episodes)


def test_learning_is_one_hour_at_a_time_from_hour_aggregates() -> None:
    flat = rule(seasonality="none", warmup="0s")
    band = learn(flat, None, Bucket(4, 4 * 10.0, 4 * 100.0 + 4 * 0.25))
    assert band == Band(10.0, pytest.approx(0.5), 1)


def test_readings_while_the_device_is_alerting_do_not_teach_the_band() -> None:
    # Four steady days, then the device runs 10 degrees hot for three days. Were the hot
    # hours learned, the band (a two-day memory) would catch up within a day or two and
    # the alert would resolve although nothing was fixed.
    config = parse_config(
        CONFIG.replace("window: 14d", "window: 2d")
        .replace("warmup: 3d", "warmup: 1d")
        .replace("seasonality: daily", "seasonality: none"),
        {},
    )
    rng = random.Random(8)
    readings = []
    for step in range(7 * 24 * 6):
        at = START + timedelta(minutes=10 * step)
        hot = 10.0 if at >= START + timedelta(days=4) else 0.0
        value = 50 + hot + rng.gauss(0, 0.5)
        readings.append(Sample("steady", "temperature", at, received_at=at, value=value))
    report = replay(config, readings, timedelta(minutes=1))
    (episode,) = [e for e in report.episodes if e.firing_since is not None]
    assert episode.firing_since is not None
    assert episode.firing_since < START + timedelta(days=4, hours=1)
    assert episode.resolved_at is None and episode.state == "firing"
