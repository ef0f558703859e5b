"""Backtest speed: a draft against the current rules over a week of a 1 000-device fleet.

    python benchmarks/backtest.py                      # 1 000 devices, 7 days, every 5 min
    python benchmarks/backtest.py --devices 200 --interval 15m

The history is generated once into a SQLite file (``--database``, kept for the next run):
the example config's rule set (overheating thresholds with overrides, fault codes,
offline) over inverters and batteries across the example's sites, a temperature reading
every ``--interval`` with a daily cycle and noise, a status code every hour, a few
devices overheating each day (some only slightly: the draft's lower level catches them),
faults, and a few devices falling silent. The draft lowers ``inverter-overheating`` from
75 to 70 degrees.

The time is the whole :func:`forewarn.backtest.engine.run_backtest` call, as
``forewarn backtest`` and the console run it: reading the period's history from the
store (one query), both simulated runs through the live path (monitors, tickets and
their sweep, simulated technicians, the notifier in dry run), and the comparison. The
target (issue 11): within 10 s.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import sqlite3
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from forewarn.backtest.engine import Request, run_backtest
from forewarn.config import Config, load_config
from forewarn.config.drafts import parse_draft
from forewarn.config.durations import parse_duration
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.models import sqlite_time
from forewarn.store.reference import sync_reference_data
from forewarn.store.schema import upgrade

START = datetime(2026, 11, 2, tzinfo=UTC)
EXAMPLE = Path(__file__).parent.parent / "config" / "forewarn.example.yaml"
DRAFT = """
monitors:
  - id: inverter-overheating
    kind: threshold
    applies_to: {kinds: [inverter]}
    metric: temperature
    above: 70
    clear: 62
    for: 10m
    severity: major
    overrides:
      - {model: SunPeak 8K, above: 76, clear: 68}
      - {site: s-bangkok, for: 20m}
  - id: battery-cold
    kind: threshold
    applies_to: {kinds: [battery]}
    metric: temperature
    below: 0
    clear: 3
    for: 30m
    severity: minor
  - id: inverter-faults
    kind: fault_code
    applies_to: {kinds: [inverter]}
    codes:
      E021: {severity: critical, description: grid isolation fault}
      E044: {description: DC arc detected}
    clear_codes: [OK]
  - {id: device-offline, kind: offline, after: 30m, severity: major}
"""


def fleet_config(devices: int, database: Path) -> Config:
    example = load_config(EXAMPLE, {"FOREWARN_DATABASE_URL": f"sqlite:///{database}"})
    sites = example.settings.sites
    kinds = [("inverter", "SunPeak 5K"), ("inverter", "SunPeak 8K"), ("battery", "StoreX 10")]
    template = example.settings.devices[0]
    fleet = tuple(
        template.model_copy(
            update={
                "id": f"dev-{n:05d}",
                "site": sites[n % len(sites)].id,
                "kind": kinds[n % 3][0],
                "model": kinds[n % 3][1],
                "serial": "",
                "parent": None,
            }
        )
        for n in range(devices)
    )
    settings = example.settings.model_copy(update={"devices": fleet})
    return replace(example, settings=settings)


def generate(config: Config, days: int, interval: timedelta, seed: int = 7) -> int:
    """Write the history into the config's SQLite database; returns the reading count."""
    database = config.database_url.removeprefix("sqlite:///")
    engine = make_engine(config.database_url)
    try:
        upgrade(engine)
        with make_sessionmaker(engine).begin() as session:
            sync_reference_data(session, config.settings, START - timedelta(days=30))
    finally:
        engine.dispose()
    rng = random.Random(seed)
    devices = config.settings.devices
    steps = int(timedelta(days=days) / interval)
    hourly = max(1, int(timedelta(hours=1) / interval))
    rows: list[tuple[object, ...]] = []
    # Per device and day: an excursion with probability 2 % (hot) and 4 % (warm: only
    # the draft's lower level sees it); 1 in 200 devices falls silent for half a day.
    events: dict[tuple[str, int], tuple[int, int, float]] = {}
    for device in devices:
        for day in range(days):
            roll = rng.random()
            if roll < 0.06 and device.kind == "inverter":
                begin = rng.randrange(0, int(timedelta(days=1) / interval))
                length = rng.randrange(3, 10)
                events[(device.id, day)] = (begin, length, 88.0 if roll < 0.02 else 73.0)
    silent = {d.id for d in devices[::200]}
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        insert = (
            "INSERT INTO readings (device_id, metric, ts, value, code, received_at, stale, late) "
            "VALUES (?, ?, ?, ?, ?, ?, 0, 0)"
        )
        count = 0
        for n in range(steps):
            at = START + n * interval
            text = sqlite_time(at)
            day, in_day = divmod(n, int(timedelta(days=1) / interval))
            sun = max(0.0, math.sin((at.hour + at.minute / 60 - 6) / 12 * math.pi))
            for device in devices:
                if device.id in silent and days // 2 * 24 <= n * interval / timedelta(hours=1) < (
                    days // 2 * 24 + 12
                ):
                    continue
                base = 5.0 + 3 * sun if device.kind == "battery" else 40.0 + 20 * sun
                value = base + rng.gauss(0, 1.0)
                event = events.get((device.id, day))
                if event is not None and event[0] <= in_day < event[0] + event[1]:
                    value = event[2] + rng.gauss(0, 0.5)
                rows.append((device.id, "temperature", text, round(value, 2), None, text))
                if device.kind == "inverter" and n % hourly == 0:
                    code = (
                        "E044"
                        if event is not None and event[2] > 80 and n % (hourly * 48) == 0
                        else "OK"
                    )
                    rows.append((device.id, "status", text, None, code, text))
            if len(rows) >= 50_000:
                connection.executemany(insert, rows)
                count += len(rows)
                rows.clear()
        connection.executemany(insert, rows)
        count += len(rows)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--interval", default="5m", help="time between a device's readings")
    parser.add_argument("--database", type=Path, default=None, help="SQLite file to keep")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    interval = parse_duration(args.interval)
    database = args.database or Path(
        f"/tmp/forewarn-backtest-{args.devices}d-{args.days}x-{args.interval}.db"
    )
    config = fleet_config(args.devices, database)
    if not database.exists():
        began = time.perf_counter()
        count = generate(config, args.days, interval)
        print(f"generated {count:,} readings in {time.perf_counter() - began:.1f} s: {database}")
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}"
    )
    draft = parse_draft(config.settings, DRAFT, "draft")
    request = Request(draft, START, START + timedelta(days=args.days))
    for _ in range(args.rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run_backtest(config, request).as_dict()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        readings = result["readings"]
        print(
            f"{args.devices} devices, {args.days} days, a reading every {args.interval}: "
            f"{readings:,} readings, wall {wall:.2f} s ({readings / wall:,.0f} readings/s), "
            f"cpu {cpu:.2f} s; current {result['current']['alerts']} alerts / "
            f"{result['current']['tickets']} tickets / {result['current']['messages_total']} "
            f"messages, draft {result['draft']['alerts']} / {result['draft']['tickets']} / "
            f"{result['draft']['messages_total']} (target 10 s: "
            f"{'met' if wall <= 10 else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
