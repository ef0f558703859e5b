"""Backtest speed: readings/s and orders/s of the replay over the in-memory store.

    python benchmarks/replay.py                 # every case, default sizes
    python benchmarks/replay.py --case fleet --devices 1000 --minutes 120

Cases (targets from issue 10):

* ``one``: one device, one threshold rule (``for: 2m``), a reading a minute for
  ``--days`` days with an excursion every few hours. Target >= 50 000 readings/s.
* ``fleet``: ``--devices`` devices (inverters and batteries across the example's sites)
  under the example config's rule set (thresholds with overrides, fault codes, offline),
  a temperature reading a minute for ``--minutes`` minutes, faults and silent devices
  injected. Target >= 20 000 readings/s.
* ``orders``: ``--orders`` orders through the order rules of ``config/olist.example.yaml``
  and the alert lifecycle over the in-memory store, each order evaluated at each of its
  milestones and at its next deadline (one per order, as the store keeps it: a deadline
  that new data moved is not looked at). Target >= 5 000 orders/s.
* ``report``: what ``forewarn feeds report`` does with a ``forewarn feeds sample`` export of
  ``--report-orders`` orders, all in memory: mapping, intake, the order rules and alerts,
  the delay cases and their notices, transit times relearned every simulated day, the
  hourly clock jumping over empty hours. No target; the whole path, for comparison.

The time is the whole :func:`forewarn.backtest.replay` call (sorting, ingest into the
store, rules, lifecycle, sweeps at every step the clock does not jump over), best of
``--rounds``.
"""

from __future__ import annotations

import argparse
import heapq
import os
import platform
import random
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from forewarn.backtest import replay
from forewarn.config import Config, load_config, parse_config
from forewarn.feeds.replay import replay as feed_replay
from forewarn.feeds.sample import SampleSpec, generate, to_csv
from forewarn.monitors.order_alerts import record_order_alerts
from forewarn.monitors.orders import OrderFacts, evaluate_order
from forewarn.monitors.transit import TransitBook, TransitTimes
from forewarn.store.memory import MemoryStore
from forewarn.store.memory_tickets import MemoryTicketStores
from forewarn.telemetry.sample import STATUS_METRIC, Sample

START = datetime(2026, 1, 5, tzinfo=UTC)
EXAMPLE = Path(__file__).parent.parent / "config" / "forewarn.example.yaml"
OLIST = Path(__file__).parent.parent / "config" / "olist.example.yaml"
ONE = """
customers: [{id: c1, name: Marta, phone: "+351912000101"}]
sites: [{id: s1, name: Home, customer: c1, region: west}]
devices: [{id: inv-1, site: s1, model: SunPeak 5K, kind: inverter}]
monitors:
  - {id: hot, kind: threshold, metric: temperature, above: 80, clear: 70, for: 2m}
"""


def one_device(days: int) -> tuple[Config, list[Sample]]:
    config = parse_config(ONE, {})
    readings = []
    for minute in range(days * 24 * 60):
        at = START + timedelta(minutes=minute)
        value = 90.0 if minute % 300 < 10 else 40.0 + (minute % 7)
        readings.append(Sample("inv-1", "temperature", at, at, value))
    return config, readings


def fleet(devices: int, minutes: int) -> tuple[Config, list[Sample]]:
    example = load_config(EXAMPLE, {})
    sites = example.settings.sites
    kinds = [("inverter", "SunPeak 5K"), ("inverter", "SunPeak 8K"), ("battery", "StoreX 10")]
    fleet_devices = tuple(
        example.settings.devices[0].model_copy(
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
    settings = example.settings.model_copy(update={"devices": fleet_devices})
    config = replace(example, settings=settings)
    rng = random.Random(7)
    hot = {d.id for d in fleet_devices[:: max(1, devices // 20)]}
    silent = {d.id for d in fleet_devices[5 :: max(1, devices // 10)]}
    readings = []
    for minute in range(minutes):
        at = START + timedelta(minutes=minute)
        for device in fleet_devices:
            if device.id in silent and minute > minutes // 3:
                continue
            base = 2.0 if device.kind == "battery" else 45.0
            value = base + rng.random() * 5
            if device.id in hot and minutes // 4 < minute < minutes // 2:
                value = 95.0
            readings.append(Sample(device.id, "temperature", at, at, value))
            if device.kind == "inverter" and minute % 30 == 0:
                code = "E021" if device.id in hot and minute == 60 else "OK"
                readings.append(Sample(device.id, STATUS_METRIC, at, at, code=code))
    return config, readings


def order_case(orders: int) -> tuple[int, Callable[[], object]]:
    """``orders`` orders, each evaluated at every milestone and every deadline the rules
    name (an event queue, as the feed replay's clock), alerts through the lifecycle into
    the in-memory store. A tenth are late to hand over, a tenth miss their promise."""
    settings = load_config(OLIST, {}).settings.delays
    rng = random.Random(11)
    facts = []
    for n in range(orders):
        placed = START + timedelta(minutes=n)
        steps = [timedelta(hours=rng.uniform(1, 30)), timedelta(days=rng.uniform(1, 4))]
        if n % 10 == 0:
            steps[1] = timedelta(days=9)  # not handed over within 7 days
        approved = placed + steps[0]
        handed = approved + steps[1]
        delivered = handed + timedelta(days=rng.uniform(2, 8))
        promised = placed + timedelta(days=14 if n % 10 != 5 else 6)
        milestones = {
            "placed": placed,
            "approved": approved,
            "handed_to_carrier": handed,
            "delivered": delivered,
        }
        facts.append(OrderFacts(f"o-{n:06d}", milestones, promised, carrier="acme", region="west"))
    book = TransitBook(
        {
            ("acme", "west", "handed_to_carrier"): TransitTimes(
                100, tuple(float(3600 * 24 * (2 + p / 20)) for p in range(101))
            )
        }
    )
    versions = {r.id: r.id for r in settings.rules}

    def run() -> MemoryStore:
        # As the store keeps them: one next check per order, replaced at each evaluation,
        # so a deadline that new data has moved is not looked at.
        store = MemoryStore()
        # Keyed by POSIX time: floats compare far faster than aware datetimes.
        queue = [
            (at.timestamp(), n, False, at)
            for n, f in enumerate(facts)
            for at in f.milestones.values()
        ]
        heapq.heapify(queue)
        checks: dict[int, datetime] = {}
        while queue:
            _, n, deadline, at = heapq.heappop(queue)
            if deadline and checks.get(n) != at:
                continue  # superseded
            order = facts[n]
            verdict = evaluate_order(settings.rules, order, book, at)
            record_order_alerts(store, order.id, verdict.status, verdict.findings, at, versions)
            check = verdict.next_check if verdict.status == "open" else None
            if check is not None and check > at:
                checks[n] = check
                heapq.heappush(queue, (check.timestamp(), n, True, check))
            else:
                checks.pop(n, None)
        return store

    return orders, run


def report_case(orders: int) -> tuple[int, Callable[[], object]]:
    """A seeded Olist-shaped export of ``orders`` orders replayed as ``feeds report`` does."""
    config = load_config(OLIST, {})
    feed = config.settings.feeds[0]
    data = to_csv(generate(SampleSpec(orders=orders, seed=7))).encode()

    def run() -> None:
        feed_replay(config.settings, feed, data, "csv", MemoryTicketStores())

    return orders, run


def measure(
    name: str, count: int, unit: str, target: int, rounds: int, run: Callable[[], object]
) -> None:
    # CPU time of this process as well as wall time: on a shared machine the wall time
    # counts the other tenants' work too.
    best_wall = best_cpu = float("inf")
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    rate, cpu_rate = count / best_wall, count / best_cpu
    verdict = (
        f" (target {target:,}/s: wall {'meets' if rate >= target else 'BELOW'}, "
        f"cpu {'meets' if cpu_rate >= target else 'BELOW'})"
        if target
        else ""
    )
    print(
        f"{name:7} {count:>8} {unit}: wall {best_wall:6.3f} s = {rate:>8,.0f}/s, "
        f"cpu {best_cpu:6.3f} s = {cpu_rate:>8,.0f}/s{verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--case", choices=("one", "fleet", "orders", "report", "all"), default="all"
    )
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--minutes", type=int, default=120)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--report-orders", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}"
    )
    step = timedelta(seconds=30)
    if args.case in ("one", "all"):
        config, readings = one_device(args.days)
        measure(
            "one",
            len(readings),
            "readings",
            50_000,
            args.rounds,
            lambda: replay(config, readings, step),
        )
    if args.case in ("fleet", "all"):
        config, readings = fleet(args.devices, args.minutes)
        measure(
            "fleet",
            len(readings),
            "readings",
            20_000,
            args.rounds,
            lambda: replay(config, readings, step),
        )
    if args.case in ("orders", "all"):
        count, run = order_case(args.orders)
        measure("orders", count, "orders", 5_000, args.rounds, run)
    if args.case in ("report", "all"):
        count, run = report_case(args.report_orders)
        measure("report", count, "orders", 0, args.rounds, run)


if __name__ == "__main__":
    main()
