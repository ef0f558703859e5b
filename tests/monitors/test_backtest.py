"""The backtest runs the live monitors over the in-memory store: the same alerts, with
their times, as the same replay on a SQL store, and as a replay that steps through every
interval instead of jumping over empty time."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forewarn.backtest import replay
from forewarn.cli import app as cli
from forewarn.config import parse_config
from forewarn.monitors.core import AlertCore
from forewarn.monitors.replay import SimulatedClock, run
from forewarn.store.memory import MemoryStore
from forewarn.telemetry.sample import STATUS_METRIC, Sample

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
CONFIG = """
customers:
  - {id: c1, name: Marta Silva, phone: "+351912000101", email: marta@example.com}
sites:
  - {id: s1, name: Silva home, customer: c1, region: west}
devices:
  - {id: gw-1, site: s1, model: Hub, kind: gateway}
  - {id: inv-1, site: s1, model: SunPeak 5K, kind: inverter, parent: gw-1}
  - {id: inv-2, site: s1, model: SunPeak 5K, kind: inverter, parent: gw-1}
  - {id: bat-1, site: s1, model: Cell 10, kind: battery}
technicians:
  - {id: t1, name: Ana, phone: "+351913000201", skills: [inverter, battery, gateway],
     regions: [west]}
monitors:
  - {id: hot, kind: threshold, metric: temperature, above: 80, clear: 70, for: 2m}
  - {id: silent, kind: offline, after: 10m}
  - id: fault
    kind: fault_code
    codes:
      E021: {severity: critical, description: Grid relay stuck}
      W100: {severity: minor, description: Fan warning}
  - {id: draining, kind: rate, metric: charge, fall: 20, per: 1h, window: 15m}
alerting:
  flapping: {window: 1h, changes: 4, settle: 20m}
  inhibit:
    - {source_rule: silent, source_kinds: [gateway], target_rules: [silent]}
  silences:
    - {id: night, devices: [bat-1], hours: "02:00-03:00", timezone: UTC}
"""


def sample(
    device: str, metric: str, at: datetime, value: float | None = None, code: str | None = None
) -> Sample:
    return Sample(device, metric, at, received_at=at, value=value, code=code)


def day_of_readings(seed: int = 7) -> list[Sample]:
    rng = random.Random(seed)
    out: list[Sample] = []
    for minute in range(0, 8 * 60):
        at = START + timedelta(minutes=minute)
        if not 200 <= minute < 260:  # the gateway falls silent for an hour
            out.append(sample("gw-1", "uptime", at, float(minute)))
        hot = 90 if 60 <= minute < 75 or (300 <= minute < 340 and minute % 6 < 3) else 40
        if not 200 <= minute < 230:
            out.append(sample("inv-1", "temperature", at, hot + rng.random()))
        if minute % 5 == 0 and not 380 <= minute < 420:
            out.append(sample("inv-2", "temperature", at, 50.0))
        if minute < 150 or minute > 400:  # the battery drains, then goes quiet
            charge = 90 - (minute % 150) * 0.8 if minute < 150 else 60.0
            out.append(sample("bat-1", "charge", at, charge))
    out.append(sample("inv-2", STATUS_METRIC, START + timedelta(minutes=100), code="W100"))
    out.append(sample("inv-2", STATUS_METRIC, START + timedelta(minutes=130), code="OK"))
    return out


def test_memory_and_sql_replays_give_the_same_alerts_with_the_same_times(tmp_path: Path) -> None:
    config = parse_config(CONFIG, {"FOREWARN_DATABASE_URL": "sqlite://"})
    readings = day_of_readings()
    in_memory = replay(config, readings, timedelta(minutes=1))
    on_sql = replay(
        config, readings, timedelta(minutes=1), scratch_url=f"sqlite:///{tmp_path / 'scratch.db'}"
    )
    assert in_memory.episodes == on_sql.episodes
    rules = {e.rule_id for e in in_memory.episodes}
    assert {"hot", "silent", "fault", "draining"} <= rules  # the input exercises them all
    assert in_memory.alerts_by_rule == on_sql.alerts_by_rule
    assert in_memory.announced == on_sql.announced
    # The whole live path in both: tickets, their sweep, technicians, the notifier.
    assert in_memory.tickets == on_sql.tickets
    assert in_memory.tickets is not None and in_memory.tickets >= 3
    assert in_memory.notifications_by_channel == on_sql.notifications_by_channel
    assert in_memory.max_notifications_per_recipient == on_sql.max_notifications_per_recipient


@pytest.mark.parametrize("step", [timedelta(seconds=30), timedelta(minutes=5)])
def test_jumping_over_empty_time_gives_what_stepping_through_it_gives(step: timedelta) -> None:
    settings = parse_config(CONFIG, {}).settings
    sparse = [r for r in day_of_readings() if r.ts.minute % 20 == 0 or r.metric == STATUS_METRIC]
    sparse.sort(key=lambda s: s.ts)
    results = []
    for jump in (True, False):
        store = MemoryStore(settings.devices, settings.sites, sparse[0].ts)
        core = AlertCore(settings, store)

        def ingest(
            batch: list[Sample], now: datetime, store: MemoryStore = store, core: AlertCore = core
        ) -> None:
            store.add_readings(batch, now)
            core.on_samples(store, batch, now)

        run(core, sparse, step, ingest, SimulatedClock(sparse[0].ts), jump=jump)  # type: ignore[arg-type]
        results.append(store.all_alerts())
    jumped, stepped = results
    assert jumped == stepped
    assert any(a.rule_id == "silent" for a in jumped)


def test_replay_in_memory_leaves_no_scratch_file_and_runs_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "forewarn.yaml").write_text(CONFIG)
    rows = ["device_id,metric,ts,value,code"]
    rows += [
        f"{s.device_id},{s.metric},{s.ts.isoformat()},{'' if s.value is None else s.value},"
        f"{s.code or ''}"
        for s in day_of_readings()
    ]
    (tmp_path / "readings.csv").write_text("\n".join(rows) + "\n")
    outputs = []
    for _ in range(2):
        result = CliRunner().invoke(
            cli,
            ["replay", "-c", "forewarn.yaml", "--csv", "readings.csv", "--step", "1m", "--json"],
            env={"FOREWARN_DATABASE_URL": f"sqlite:///{tmp_path / 'live.db'}"},
        )
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.output))
    assert outputs[0] == outputs[1]
    assert outputs[0]["alerts_by_rule"]["hot"] >= 1
    assert outputs[0]["tickets"] >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forewarn.yaml", "readings.csv"]
