"""The issue's end-to-end promises, through the service's real entry points: the
scheduler after a restart, the ingest gate, and ``forewarn replay``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forewarn.cli import app as cli
from forewarn.clock import SystemClock
from forewarn.config import parse_config
from forewarn.service import Runtime
from tests.monitors.fleet import Fleet, alerts, ingest, report, running_fleet, temperature

START = datetime(2026, 11, 3, 3, 0, tzinfo=UTC)

CONFIG = """
customers:
  - {id: c-silva, name: Marta Silva, phone: "+351912000101", email: marta@example.com}
sites:
  - {id: s-cascais, name: Silva home, customer: c-silva, region: lisbon-west}
devices:
  - {id: inv-101, site: s-cascais, model: SunPeak 5K, kind: inverter}
technicians:
  - {id: t-ana, name: Ana Costa, phone: "+351913000201", skills: [inverter],
     regions: [lisbon-west]}
monitors:
  - {id: hot, kind: threshold, metric: temperature, above: 80, clear: 70, for: 2m}
  - {id: silent, kind: offline, after: 2s}
scheduler:
  offline_check_interval: 0.5s
"""


@pytest.fixture
def fleet(database_url: str) -> Iterator[Fleet]:
    with running_fleet(database_url, CONFIG, START) as fleet:
        yield fleet


def test_a_device_silent_across_a_restart_is_alarmed_within_one_check_interval(
    fleet: Fleet,
) -> None:
    first = fleet.start()
    fleet.clock.at = datetime.now(UTC)
    report(first, "inv-101", 40)
    last_seen = fleet.clock.now()
    fleet.stop(first)  # forewarn stops; the device goes silent meanwhile

    config = parse_config(CONFIG, {"FOREWARN_DATABASE_URL": fleet.url})
    runtime = Runtime.start(config, ("scheduler",), clock=SystemClock())
    try:
        give_up = time.monotonic() + 10
        while not alerts(runtime.app, "silent") and time.monotonic() < give_up:
            time.sleep(0.05)
        detected = datetime.now(UTC)
        (alert,) = alerts(runtime.app, "silent")
    finally:
        runtime.stop()
    deadline = last_seen + timedelta(seconds=2)
    assert alert.firing_since == deadline
    assert detected - deadline < timedelta(seconds=0.5 + 0.5)  # one interval, plus slack


def test_a_retained_value_replayed_on_connect_fires_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'forewarn.db'}"
    with running_fleet(url, CONFIG, START):
        config = parse_config(CONFIG, {"FOREWARN_DATABASE_URL": url})
        runtime = Runtime.start(config, ("ingest",), clock=SystemClock(), direct=True)
        try:
            assert runtime.ingester is not None
            now = datetime.now(UTC).isoformat()
            runtime.ingester.ingest_payloads(
                [
                    (
                        "devices/inv-101/telemetry",
                        json.dumps({"ts": now, "temperature": 99}).encode(),
                        True,
                    )
                ]
            )
            runtime.app.monitors.sweep(datetime.now(UTC) + timedelta(minutes=5))
            hot = alerts(runtime.app, "hot")
        finally:
            runtime.stop()
    assert hot == []


def test_replaying_a_day_of_readings_gives_the_alerts_live_operation_gave(
    fleet: Fleet, tmp_path: Path
) -> None:
    live = fleet.start()
    rows = ["device_id,metric,ts,value,code,stale"]
    at = START
    for minute in range(60):
        value = 95 if 20 <= minute < 30 else 40
        sample = temperature("inv-101", value, at)
        ingest(live, [sample])
        live.monitors.sweep(at)
        rows.append(f"inv-101,temperature,{at.isoformat()},{value},,")
        at = fleet.clock.advance(minutes=1)
    rows.append(f"inv-101,temperature,{at.isoformat()},99,,true")  # a stale replay
    csv_file = tmp_path / "readings.csv"
    csv_file.write_text("\n".join(rows) + "\n")
    config_file = tmp_path / "forewarn.yaml"
    config_file.write_text(CONFIG)

    result = CliRunner().invoke(
        cli,
        [
            "replay",
            "-c",
            str(config_file),
            "--csv",
            str(csv_file),
            "--scratch",
            f"sqlite:///{tmp_path / 'scratch.db'}",
            "--step",
            "1m",
            "--json",
        ],
    )

    assert result.exit_code == 0, result.output
    outcome = json.loads(result.output)
    fired_live = [a for a in alerts(live, "hot") if a.firing_since is not None]
    assert outcome["alerts_by_rule"]["hot"] == len(fired_live) == 1
    assert outcome["tickets"] == 1
    assert outcome["readings"] == 61
