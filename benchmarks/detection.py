"""Detection quality on labelled synthetic data: what each rule set catches, how early, and
how often it cries wolf.

    python benchmarks/detection.py                       # telemetry and orders, defaults
    python benchmarks/detection.py --part telemetry --devices 60 --days 60
    python benchmarks/detection.py --part orders --orders 20000

**Telemetry.** A fleet of inverters reporting heatsink temperature every ``--every``
minutes, with what real telemetry has: a daily cycle (peak in the local afternoon, sites in
several time zones, cooler weekends), a normal range that drifts by ``--drift`` (10 %) a
month, sensor noise and the odd spike, dropouts (single readings and gaps of hours),
planned shutdowns (in a maintenance silence, as ops would enter them; the device either
reports ambient temperature or nothing), gradual degradations (a fouled heatsink, a
failing fan: the excess grows, linearly or slowly then fast, over 8 hours to 6 days until
the device trips at 85 °C, the *failure*) and sudden faults (the temperature jumps past
the trip level within minutes). After a failure the device is silent until repaired (1 to
3 days), then normal again.

Every rule set runs through :func:`forewarn.backtest.replay` (the live monitors, alert
lifecycle, silences and sweeps over the in-memory store, simulated clock): the same code
as live. A *ticket* is an alert handed to ticketing while the device has no other open
announced alert (ticketing keeps one ticket per device episode). Reported per rule set:

* degradations ticketed before their failure, and the median lead (failure - ticket);
* sudden faults ticketed (within the hour after the jump), median time to ticket;
* false tickets per device-month: tickets outside every incident (from its start to the
  repair) and outside planned shutdowns.

**Orders.** Olist-shaped order histories from ``forewarn feeds sample`` (the same
generator as the docs' figures), the delay-risk model learned from the older half and the
trade-off table (probability threshold -> share of late orders warned by the promised
day, share of on-time orders warned, median lead before the promise) measured on the newer
half, exactly as ``forewarn feeds report`` prints it.

Targets (issue 15): telemetry, example config: >= 90 % of degradations ticketed before
the failure, median lead >= 6 h, <= 1 false ticket per device-month with 10 % monthly
drift. Orders: >= 95 % of late orders warned no later than the promised day with <= 3 % of
on-time orders warned.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from forewarn.config import parse_config
from forewarn.monitors.core import AlertCore
from forewarn.monitors.replay import SimulatedClock, run
from forewarn.store.memory import MemoryStore
from forewarn.telemetry.sample import Sample

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
TRIP = 85.0
EXAMPLE = Path(__file__).parent.parent / "config" / "forewarn.example.yaml"
FLEET = """
customers:
  - {id: c1, name: Fleet owner, phone: "+351912000101"}
sites:
  - {id: s1, name: Plant, customer: c1, region: west}
"""


@dataclass(frozen=True)
class Incident:
    device: str
    kind: str
    """``degradation`` or ``sudden``."""
    start: datetime
    failure: datetime
    repaired: datetime


@dataclass(frozen=True)
class Shutdown:
    device: str
    start: datetime
    end: datetime
    reports: bool
    """The device keeps reporting (ambient temperature) rather than falling silent."""


@dataclass
class Fleet:
    devices: list[str]
    readings: list[Sample]
    incidents: list[Incident]
    shutdowns: list[Shutdown]
    days: int


@dataclass
class _Device:
    id: str
    base: float
    amplitude: float
    noise: float
    offset_hours: float
    shape: float = 2.0
    """How the excess of a degradation grows: 1 linear, 2 and 3 slow then fast."""
    incidents: list[Incident] = field(default_factory=list)
    shutdowns: list[Shutdown] = field(default_factory=list)


def normal(device: _Device, at: datetime, drift: float) -> float:
    """The device's normal temperature at ``at``: daily cycle, cooler weekends, drift."""
    local = at + timedelta(hours=device.offset_hours)
    hour = local.hour + local.minute / 60
    cycle = device.amplitude * math.sin((hour - 8) / 24 * 2 * math.pi)
    weekend = -1.5 if local.weekday() >= 5 else 0.0
    months = (at - START) / timedelta(days=30)
    return (device.base + cycle + weekend) * (1 + drift * months)


def generate_fleet(
    devices: int, days: int, every: timedelta, drift: float, seed: int = 15
) -> Fleet:
    rng = random.Random(seed)
    end = START + timedelta(days=days)
    fleet: list[_Device] = []
    for n in range(devices):
        device = _Device(
            id=f"inv-{n:03d}",
            base=rng.uniform(34, 46),
            amplitude=rng.uniform(4, 9),
            noise=rng.uniform(0.3, 1.0),
            offset_hours=rng.choice([-3, 0, 1, 2, 7, 8]),
        )
        _plan(device, rng, days)
        fleet.append(device)
    readings: list[Sample] = []
    steps = int((end - START) / every)
    for device in fleet:
        gap_until = START
        for step in range(steps):
            at = START + step * every
            if at < gap_until:
                continue
            if rng.random() < 0.03 / (86400 / every.total_seconds()):  # ~3 % of days
                gap_until = at + timedelta(hours=rng.uniform(1, 8))  # a dropout of hours
                continue
            if rng.random() < 0.01:
                continue  # a single lost reading
            value = _value(device, at, drift, rng)
            if value is not None:
                readings.append(Sample(device.id, "temperature", at, received_at=at, value=value))
    return Fleet(
        [d.id for d in fleet],
        readings,
        [i for d in fleet for i in d.incidents],
        [s for d in fleet for s in d.shutdowns],
        days,
    )


def _plan(device: _Device, rng: random.Random, days: int) -> None:
    """At most one planned shutdown, one degradation and one sudden fault per device, a
    day apart from each other."""
    busy: list[tuple[datetime, datetime]] = []

    def free(start: datetime, end: datetime) -> bool:
        return all(end <= s - timedelta(days=1) or start >= e + timedelta(days=1) for s, e in busy)

    if rng.random() < 0.3:
        start = START + timedelta(days=rng.uniform(8, days - 2))
        end = start + timedelta(hours=rng.uniform(6, 24))
        device.shutdowns.append(Shutdown(device.id, start, end, rng.random() < 0.5))
        busy.append((start, end))
    for _ in range(5):  # a few tries to place it clear of the shutdown
        start = START + timedelta(days=rng.uniform(10, days - 8))
        # From 8 hours to 6 days, as likely short as long (log-uniform).
        failure = start + timedelta(hours=math.exp(rng.uniform(math.log(8), math.log(144))))
        repaired = failure + timedelta(days=rng.uniform(1, 3))
        if free(start, repaired):
            if rng.random() < 0.5:
                device.shape = rng.choice([1.0, 2.0, 3.0])
                device.incidents.append(
                    Incident(device.id, "degradation", start, failure, repaired)
                )
                busy.append((start, repaired))
            break
    for _ in range(5):
        start = START + timedelta(days=rng.uniform(6, days - 4))
        failure = start + timedelta(minutes=rng.uniform(5, 20))
        repaired = failure + timedelta(days=rng.uniform(1, 3))
        if free(start, repaired):
            if rng.random() < 0.15:
                device.incidents.append(Incident(device.id, "sudden", start, failure, repaired))
            break


def _value(device: _Device, at: datetime, drift: float, rng: random.Random) -> float | None:
    for shutdown in device.shutdowns:
        if shutdown.start <= at < shutdown.end:
            return 18 + rng.gauss(0, 0.5) if shutdown.reports else None
    value = normal(device, at, drift) + rng.gauss(0, device.noise)
    if rng.random() < 0.001:
        value += rng.choice([-1, 1]) * rng.uniform(8, 20)  # a sensor spike
    for incident in device.incidents:
        if incident.failure <= at < incident.repaired:
            return None  # tripped, waiting for the technician
        if incident.start <= at < incident.failure:
            share = (at - incident.start) / (incident.failure - incident.start)
            if incident.kind == "sudden":
                return TRIP + 3 + rng.gauss(0, 0.5)
            # The excess grows slowly, then faster, and reaches the trip level at the
            # failure (judged at the device's normal level of that moment).
            excess = (TRIP + 1 - normal(device, incident.failure, drift)) * share**device.shape
            return value + excess
    return value


# -- rule sets ---------------------------------------------------------------------------


def example_rules() -> list[dict[str, object]]:
    """The example config's inverter temperature rules, as an ops engineer would copy them."""
    config = yaml.safe_load(EXAMPLE.read_text())
    chosen = []
    for monitor in config["monitors"]:
        if monitor.get("metric") != "temperature":
            continue
        if "inverter" not in (monitor.get("applies_to") or {}).get("kinds", ["inverter"]):
            continue
        monitor = {k: v for k, v in monitor.items() if k not in ("overrides", "applies_to")}
        chosen.append(monitor)
    return chosen


def static_rules(fleet: Fleet) -> list[dict[str, object]]:
    """A level set from the first three days of running (commissioning): the highest
    reading seen plus 5 degrees, held 10 minutes: what ops do without a learned band."""
    first = [r.value for r in fleet.readings if r.ts < START + timedelta(days=3) and r.value]
    level = round(sorted(first)[int(len(first) * 0.999)] + 5, 1)
    return [
        {
            "id": "commissioning-level",
            "kind": "threshold",
            "metric": "temperature",
            "above": level,
            "clear": level - 3,
            "for": "10m",
        }
    ]


def config_text(fleet: Fleet, monitors: Sequence[dict[str, object]]) -> str:
    devices = [
        {"id": d, "site": "s1", "model": "SunPeak 5K", "kind": "inverter"} for d in fleet.devices
    ]
    silences = [
        {
            "id": f"service-{n}",
            "devices": [s.device],
            "starts": s.start.isoformat(),
            "ends": s.end.isoformat(),
            "comment": "planned shutdown",
        }
        for n, s in enumerate(fleet.shutdowns)
    ]
    more = {
        "devices": devices,
        "monitors": list(monitors),
        "alerting": {"silences": silences},
    }
    return FLEET + yaml.safe_dump(more, sort_keys=False, allow_unicode=True)


@dataclass(frozen=True)
class Score:
    name: str
    degradations: int
    caught: int
    leads: list[float]
    sudden: int
    sudden_caught: int
    sudden_delays: list[float]
    false_tickets: int
    device_months: float
    seconds: float
    readings: int

    def row(self) -> str:
        caught = self.caught / self.degradations * 100 if self.degradations else 0.0
        lead = statistics.median(self.leads) if self.leads else float("nan")
        sudden = self.sudden_caught / self.sudden * 100 if self.sudden else 0.0
        delay = statistics.median(self.sudden_delays) if self.sudden_delays else float("nan")
        return (
            f"| {self.name} | {self.caught}/{self.degradations} ({caught:.0f} %) | "
            f"{lead:.1f} h | {self.sudden_caught}/{self.sudden} ({sudden:.0f} %), "
            f"{delay:.0f} min | {self.false_tickets / self.device_months:.2f} "
            f"({self.false_tickets}) | {self.readings / self.seconds:,.0f}/s |"
        )


def score(name: str, fleet: Fleet, monitors: Sequence[dict[str, object]]) -> Score:
    settings = parse_config(config_text(fleet, monitors), {}).settings
    began = time.perf_counter()
    # What forewarn.backtest.replay does, keeping the store to read when each alert was
    # handed to ticketing.
    ordered = sorted(fleet.readings, key=lambda s: s.ts)
    store = MemoryStore(settings.devices, settings.sites, ordered[0].ts)
    core = AlertCore(settings, store)

    def ingest(batch: Sequence[Sample], now: datetime) -> None:
        store.add_readings(batch, now)
        core.on_samples(store, batch, now)

    run(core, ordered, timedelta(minutes=1), ingest, SimulatedClock(ordered[0].ts))
    seconds = time.perf_counter() - began
    announced = [
        (a.subject, a.notified_at, a.resolved_at)
        for a in store.all_alerts()
        if a.notified_at is not None
    ]
    tickets = _tickets(announced)
    caught = 0
    leads: list[float] = []
    sudden_caught = 0
    delays: list[float] = []
    for incident in fleet.incidents:
        mine = [t for d, t in tickets if d == incident.device and incident.start <= t]
        if incident.kind == "degradation":
            before = [t for t in mine if t < incident.failure]
            if before:
                caught += 1
                leads.append((incident.failure - min(before)) / timedelta(hours=1))
        else:
            soon = [t for t in mine if t < incident.start + timedelta(hours=1)]
            if soon:
                sudden_caught += 1
                delays.append((min(soon) - incident.start) / timedelta(minutes=1))
    false = 0
    for device, at in tickets:
        if any(
            i.device == device and i.start - timedelta(hours=1) <= at <= i.repaired
            for i in fleet.incidents
        ):
            continue
        if any(s.device == device and s.start <= at <= s.end for s in fleet.shutdowns):
            continue
        false += 1
        if os.environ.get("DETECTION_DEBUG"):
            print("false ticket", name, device, at)
    return Score(
        name,
        sum(1 for i in fleet.incidents if i.kind == "degradation"),
        caught,
        leads,
        sum(1 for i in fleet.incidents if i.kind == "sudden"),
        sudden_caught,
        delays,
        false,
        len(fleet.devices) * fleet.days / 30,
        seconds,
        len(fleet.readings),
    )


def _tickets(
    announced: Sequence[tuple[str, datetime, datetime | None]],
) -> list[tuple[str, datetime]]:
    """Announced alerts -> tickets: a new one only when the device has no announced alert
    still open (ticketing attaches the others to the open ticket)."""
    tickets = []
    open_until: dict[str, datetime | None] = {}
    for device, at, resolved in sorted(announced, key=lambda a: a[1]):
        until = open_until.get(device, at - timedelta(seconds=1))
        if device in open_until and (until is None or until >= at):
            open_until[device] = None if until is None or resolved is None else max(until, resolved)
            continue
        tickets.append((device, at))
        open_until[device] = resolved
    return tickets


def telemetry(args: argparse.Namespace) -> None:
    fleet = generate_fleet(
        args.devices, args.days, timedelta(minutes=args.every), args.drift, args.seed
    )
    degradations = sum(1 for i in fleet.incidents if i.kind == "degradation")
    print(
        f"telemetry: {len(fleet.devices)} devices x {args.days} days, a reading every "
        f"{args.every} min ({len(fleet.readings):,} readings), drift {args.drift:.0%}/month, "
        f"{degradations} degradations, "
        f"{sum(1 for i in fleet.incidents if i.kind == 'sudden')} sudden faults, "
        f"{len(fleet.shutdowns)} planned shutdowns"
    )
    print()
    print(
        "| rule set | degradations ticketed before failure | median lead | sudden faults "
        "ticketed within 1 h, median delay | false tickets per device-month (count) | "
        "replay speed |"
    )
    print("|---|---|---|---|---|---|")
    example = example_rules()
    sets: list[tuple[str, list[dict[str, object]]]] = [
        ("example config (threshold + baseline + forecast)", example),
        ("commissioning level (static threshold)", static_rules(fleet)),
        ("baseline only", [m for m in example if m["kind"] == "baseline"]),
        ("forecast only", [m for m in example if m["kind"] == "forecast"]),
    ]
    for name, monitors in sets:
        if args.only and args.only not in name:
            continue
        print(score(name, fleet, monitors).row(), flush=True)


def orders(args: argparse.Namespace) -> None:
    from forewarn.feeds.tradeoff import sample_tradeoff

    print(sample_tradeoff(args.orders, args.seed).table())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["telemetry", "orders", "all"], default="all")
    parser.add_argument("--devices", type=int, default=60)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--every", type=int, default=10, help="minutes between readings")
    parser.add_argument("--drift", type=float, default=0.10, help="normal range drift a month")
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--only", default="", help="run only rule sets whose name has this")
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.1f}")
    if args.part in ("telemetry", "all"):
        telemetry(args)
    if args.part in ("orders", "all"):
        orders(args)


if __name__ == "__main__":
    main()
