"""Scheduled monitor sweeps over a large fleet: wall time of one sweep of each kind.

    python benchmarks/monitors.py --devices 100000 --database sqlite
    python benchmarks/monitors.py --devices 100000 --database postgresql

Setup (not timed): N devices in cohorts of 10 (same model, same site), each with a
recent ``last_seen_at`` and latest ``temperature`` and ``power`` readings, written with
bulk inserts. 100 devices went silent 20 minutes ago; 1 000 devices have an open
threshold alert (500 pending, 10 of them past their ``for``; 500 firing, 100 of them now
cleared); 50 devices produce 40 % less power than their cohort.

Timed, each once (median of ``--rounds`` fresh databases):

* ``offline``: one ``sweep_offline`` -- the set-based silent/back queries over every
  device, firing the 100 silent devices (alerts, tickets and outbox rows included);
* ``offline (steady)``: the next sweep, when nothing changed (the every-30-s case);
* ``threshold``: one ``sweep_pending`` -- 1 000 open alerts joined to the latest
  readings: 10 fire on their timer, 100 resolve (with their tickets);
* ``fleet-peer``: one ``sweep_peers`` -- median and MAD per cohort in SQL over every
  device's latest reading, 50 devices flagged; ``(steady)``: each check run again with
  nothing left to change.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from statistics import median

from sqlalchemy import insert, text
from streams import database  # one temporary SQLite file or PostgreSQL database per run

from forewarn.alerting import Monitors
from forewarn.config.schema import Settings
from forewarn.store.alerting import LatestReading
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.models import Alert, Customer, Device, Site
from forewarn.store.schema import upgrade
from forewarn.ticketing.tickets import Ticketing

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
COHORT = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "FOREWARN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        with database(args.database, args.postgres_url) as url:
            for name, seconds in run(url, args.devices).items():
                results.setdefault(name, []).append(seconds)
    print(
        f"# {args.devices} devices, {args.database}, {platform.python_version()}, "
        f"median of {args.rounds}"
    )
    for name, times in results.items():
        print(
            f"{name:20s} {median(times) * 1000:8.1f} ms   (runs: "
            + ", ".join(f"{t * 1000:.0f}" for t in times)
            + ")"
        )
    print(
        "# steady sweep vs one plain scan of the same table (medians), load "
        + " ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    for line in ratios({name: median(times) for name, times in results.items()}):
        print(line)


SCANS = {
    # One plain scan of the table each sweep reads, in the same run: the sweep's target
    # is 1.5x this (issue 14).
    "offline": "SELECT count(*) FROM devices WHERE coalesce(last_seen_at, registered_at) < :t",
    "threshold": "SELECT count(*) FROM latest_readings WHERE metric = 'temperature' AND value > 80",
    "fleet-peer": "SELECT count(*), avg(value) FROM latest_readings WHERE metric = 'power'",
}
TARGET_RATIO = 1.5


def run(url: str, count: int) -> dict[str, float]:
    engine = make_engine(url)
    upgrade(engine)
    settings = populate(engine, count)
    sessions = make_sessionmaker(engine)
    monitors = Monitors(settings, sessions, Ticketing(settings.ticketing))
    timings = {
        "offline": timed(lambda: monitors.sweep_offline(NOW)),
        "offline (steady)": timed(lambda: monitors.sweep_offline(NOW)),
        "threshold": timed(lambda: monitors.sweep_pending(NOW)),
        "threshold (steady)": timed(lambda: monitors.sweep_pending(NOW)),
        "fleet-peer": timed(lambda: monitors.sweep_peers(NOW)),
        "fleet-peer (steady)": timed(lambda: monitors.sweep_peers(NOW)),
    }
    with engine.connect() as connection:
        for name, sql in SCANS.items():
            started = time.perf_counter()
            connection.execute(text(sql), {"t": NOW - timedelta(minutes=10)}).all()
            timings[f"{name} scan"] = time.perf_counter() - started
    engine.dispose()
    return timings


def ratios(results: dict[str, float]) -> list[str]:
    """Each steady sweep beside the plain scan of its table, with the ratio and target."""
    lines = []
    for name in SCANS:
        sweep, scan = results[f"{name} (steady)"], results[f"{name} scan"]
        ratio = sweep / scan if scan > 0 else float("inf")
        verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
        lines.append(
            f"{name:11s} steady {sweep * 1000:8.1f} ms  scan {scan * 1000:8.1f} ms  "
            f"ratio {ratio:5.2f}  target <= {TARGET_RATIO}: {verdict}"
        )
    return lines


def timed(job: Callable[[], int]) -> float:
    started = time.perf_counter()
    changed = job()
    elapsed = time.perf_counter() - started
    print(f"  {changed} alerts changed in {elapsed * 1000:.1f} ms", file=sys.stderr)
    return elapsed


def populate(engine: object, count: int) -> Settings:
    from sqlalchemy import Engine

    assert isinstance(engine, Engine)
    sites = count // COHORT
    devices = [
        {
            "id": f"inv-{i:06d}",
            "site_id": f"s-{i // COHORT:05d}",
            "model": "SunPeak 5K",
            "kind": "inverter",
            "serial": "",
            "registered_at": NOW - timedelta(days=30),
            "last_seen_at": NOW
            - (timedelta(minutes=20) if i % 1000 == 7 else timedelta(seconds=30)),
            "last_received_at": NOW,
        }
        for i in range(count)
    ]
    latest = []
    for i, device in enumerate(devices):
        power = 2400.0 if i % 2000 == 3 else 4000.0 + (i % 7) * 10
        # 1 000 devices with an open alert (every 100th): half pending, half firing. Of
        # those, 10 pending are past their 'for' and 10 firing have cleared; the rest
        # stay as they are (pending for 1 minute, still hot).
        hot = i % 100 == 0
        temperature = 95.0 if hot and i % 2000 not in (100, 1100) else 60.0
        latest.append(
            {
                "device_id": device["id"],
                "metric": "power",
                "ts": NOW - timedelta(minutes=1),
                "value": power,
                "code": None,
            }
        )
        latest.append(
            {
                "device_id": device["id"],
                "metric": "temperature",
                "ts": NOW - timedelta(minutes=1),
                "value": temperature if i % 200 else 95.0,
                "code": None,
            }
        )
    alerts = []
    for i in range(0, count, 100):
        device = devices[i]["id"]
        pending = i % 200 == 0
        due = pending and i % 10_000 == 0
        alerts.append(
            {
                "fingerprint": f"hot:{device}",
                "open_fingerprint": f"hot:{device}",
                "rule_id": "hot",
                "rule_version": "bench",
                "subject": device,
                "state": "pending" if pending else "firing",
                "severity": "major",
                "summary": "temperature high",
                "suggested_fix": "",
                "pending_since": NOW - timedelta(minutes=10 if due or not pending else 1),
                "firing_since": None if pending else NOW - timedelta(minutes=5),
                "last_ts": NOW - timedelta(minutes=10 if due or not pending else 1),
                "breaches": 1,
                "evidence": {},
                "notified_at": None if pending else NOW - timedelta(minutes=5),
            }
        )
    with engine.begin() as connection:
        connection.execute(
            insert(Customer),
            [
                {
                    "id": "c-1",
                    "name": "Fleet owner",
                    "locale": "en",
                    "timezone": "UTC",
                    "channels": [],
                    "opted_out": [],
                }
            ],
        )
        connection.execute(
            insert(Site),
            [
                {
                    "id": f"s-{s:05d}",
                    "name": f"Site {s}",
                    "customer_id": "c-1",
                    "address": "",
                    "region": "r",
                    "timezone": "UTC",
                }
                for s in range(sites)
            ],
        )
        for start in range(0, len(devices), 20_000):
            connection.execute(insert(Device), devices[start : start + 20_000])
        for start in range(0, len(latest), 20_000):
            connection.execute(insert(LatestReading), latest[start : start + 20_000])
        connection.execute(insert(Alert), alerts)
    return Settings.model_validate(
        {
            "customers": [{"id": "c-1", "name": "Fleet owner"}],
            "sites": [
                {"id": f"s-{s:05d}", "name": f"Site {s}", "customer": "c-1", "region": "r"}
                for s in range(sites)
            ],
            "devices": [
                {"id": d["id"], "site": d["site_id"], "model": d["model"], "kind": "inverter"}
                for d in devices
            ],
            "monitors": [
                {"id": "silent", "kind": "offline", "after": "10m"},
                {
                    "id": "hot",
                    "kind": "threshold",
                    "metric": "temperature",
                    "above": 80,
                    "clear": 70,
                    "for": "5m",
                },
                {
                    "id": "peer",
                    "kind": "fleet_peer",
                    "metric": "power",
                    "min_relative": 0.2,
                    "min_cohort": 5,
                },
            ],
        }
    )


if __name__ == "__main__":
    main()
