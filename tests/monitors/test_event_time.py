"""Event time: readings that arrive out of order within ``alerting.lateness`` give the
alerts the sorted readings give, live (the ingest path) and in replay; a reading beyond
the bound is stored, marked late and drives nothing."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from forewarn.backtest import Episode, replay
from forewarn.config import parse_config
from forewarn.store.alerts import to_record
from forewarn.store.models import Alert, Reading
from forewarn.telemetry.sample import Sample
from tests.monitors.fleet import Fleet, ingest, running_fleet

START = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
CONFIG = """
customers:
  - {id: c1, name: Marta Silva, phone: "+351912000101"}
sites:
  - {id: s1, name: Home, customer: c1, region: west}
devices:
  - {id: inv-1, site: s1, model: SunPeak 5K, kind: inverter}
technicians:
  - {id: t1, name: Ana Costa, phone: "+351913000201", skills: [inverter], regions: [west]}
monitors:
  - {id: hot, kind: threshold, metric: temperature, above: 80, clear: 70, for: 1m}
alerting:
  lateness: 2m
  flapping: {changes: 1000}
"""


def burst() -> list[Sample]:
    """A reading every 10 s for 20 minutes; hot spells of 30 s (too short to fire) and of
    3 minutes (fires)."""
    out = []
    for tick in range(120):
        at = START + timedelta(seconds=10 * tick)
        hot = 30 <= tick < 33 or 60 <= tick < 78
        out.append(Sample("inv-1", "temperature", at, at, 90.0 if hot else 40.0))
    return out


def shuffled_within(samples: list[Sample], bound: timedelta, seed: int) -> list[Sample]:
    """``samples`` in an arrival order where none comes after one more than ``bound`` (event
    time) newer than itself."""
    rng = random.Random(seed)
    return sorted(samples, key=lambda s: s.ts + rng.random() * bound * 0.9)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with running_fleet(f"sqlite:///{tmp_path / 'forewarn.db'}", CONFIG, START) as fleet:
        yield fleet


def live(database: Path, arrivals: list[Sample]) -> list[Episode]:
    """The alerts of ``arrivals`` ingested in batches of four, in arrival order, on a fresh
    store with the clock at each batch's newest reading."""
    with running_fleet(f"sqlite:///{database}", CONFIG, START) as fleet:
        app = fleet.start()
        for start in range(0, len(arrivals), 4):
            batch = arrivals[start : start + 4]
            fleet.clock.at = max(s.ts for s in batch)
            ingest(app, batch)
        app.monitors.sweep(fleet.clock.at + timedelta(minutes=5))
        with app.sessions() as session:
            rows = session.scalars(select(Alert).order_by(Alert.id)).all()
            return [Episode.of(to_record(a)) for a in rows]


def test_a_burst_shuffled_within_the_bound_gives_the_sorted_bursts_alerts(
    tmp_path: Path,
) -> None:
    readings = burst()
    in_order = live(tmp_path / "sorted.db", readings)
    assert [(e.firing_since is not None, e.state) for e in in_order] == [
        (False, "resolved"),  # the 30-second spell: pending, cancelled
        (True, "resolved"),
    ]
    for seed in (1, 2, 3):
        arrivals = shuffled_within(readings, timedelta(minutes=2), seed)
        assert arrivals != readings
        assert live(tmp_path / f"shuffled-{seed}.db", arrivals) == in_order
    config = parse_config(CONFIG, {})
    assert list(replay(config, readings, timedelta(seconds=10)).episodes) == in_order


def test_a_reading_beyond_the_bound_is_stored_marked_late_and_drives_nothing(
    fleet: Fleet,
) -> None:
    app = fleet.start()
    readings = [
        Sample(
            "inv-1", "temperature", START + timedelta(minutes=m), START + timedelta(minutes=m), 40.0
        )
        for m in range(10)
    ]
    ingest(app, readings)
    # Ten minutes late: a hot reading that would have started a pending alert.
    late = Sample("inv-1", "temperature", START + timedelta(minutes=1, seconds=30), START, 99.0)
    ingest(app, [late])
    app.monitors.sweep(START + timedelta(minutes=30))
    with app.sessions() as session:
        assert session.scalars(select(Alert)).all() == []
        flags = {row.ts: row.late for row in session.execute(select(Reading.ts, Reading.late))}
    assert flags[late.ts] is True
    assert not any(v for ts, v in flags.items() if ts != late.ts)
