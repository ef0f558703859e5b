"""Ingest throughput: forewarn's full pipeline against a bare paho subscriber and a
Node-RED flow, same run, same broker, same queued stream.

    python benchmarks/ingest.py --messages 200000 --database sqlite
    python benchmarks/ingest.py --messages 200000 --database postgresql
    python benchmarks/ingest.py --messages 200000 --database sqlite --ingesters 2
    python benchmarks/ingest.py --messages 50000 --profile /tmp/ingest.pstats

Method. N QoS-1 readings for 1 000 devices are published to the broker BEFORE any
subscriber connects, into persistent sessions primed for each subscriber (created with a
session expiry; the subscribers resume them with ``clean_start=False``). Each subscriber
is then timed from its start until the last message is consumed: the bare paho
subscriber counts; the Node-RED flow (mqtt in -> json -> threshold -> count, persisting
nothing; see nodered.py) counts from its first message to its last; forewarn commits
(parsed, validated, stored, evaluated by the monitors) and acknowledges. Publishing
first measures the consumers alone: on this 2-core machine a concurrent publisher would
compete with the subscriber and the broker for the CPU. The broker runs with
``max_queued_messages 0`` (the default of 1 000 silently drops the rest of an offline
session's queue) and ``max_inflight_messages 0``.

forewarn runs as ``--ingesters`` separate processes (default 1), each built as
``forewarn run --role ingest`` builds it; with 2 or more they share one MQTT 5 shared
subscription (``broker.share_group``), and the CPU of every process is added up. The
broker's CPU per message is printed beside each consumer's.

The subscribers take turns (``--rounds``, default 3, each forewarn round on a fresh
database) and the medians are compared, because other work on a shared machine makes
single runs vary by +-20%. After each forewarn round the benchmark checks that every
reading was stored once and that the broker holds nothing more for forewarn's sessions
(every message was acknowledged).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

import ingesters
import nodered
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session
from streams import (
    Broker,
    bare_subscriber,
    broker,
    database,
    device_id,
    load,
    machine,
    prime_session,
    publish,
)

from forewarn.clock import SystemClock
from forewarn.config.schema import IngestSettings, Settings
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.models import Alert, Customer, Device, Reading, Site
from forewarn.store.schema import upgrade
from forewarn.telemetry.ingest import BatchHook, Ingester
from forewarn.telemetry.sample import Sample

TOPIC = "devices/+/telemetry"
TARGET_BARE = {"sqlite": 0.8, "postgresql": 0.6}
TARGET_NODE_RED = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--broker-port", type=int, help="use a running broker on 127.0.0.1")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "FOREWARN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="admin URL; a scratch database is created and dropped",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    parser.add_argument(
        "--ingesters",
        type=int,
        default=1,
        help="forewarn ingest processes; 2 or more share one MQTT 5 shared subscription",
    )
    parser.add_argument(
        "--node-red",
        choices=("auto", "skip"),
        default="auto",
        help="measure the Node-RED flow too (auto: install it with npm when needed)",
    )
    parser.add_argument(
        "--node-red-dir",
        type=Path,
        help="keep the Node-RED install here and reuse it (default: a temporary folder)",
    )
    parser.add_argument(
        "--hook",
        choices=("monitors", "none"),
        default="monitors",
        help="evaluate the monitors inside each batch (the product), or store only",
    )
    parser.add_argument(
        "--readings-unique",
        choices=("schema", "ts-first"),
        default="schema",
        help="experiment: rebuild readings' unique key as (ts, device_id, metric)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="run forewarn in this process under cProfile (in the ingest thread) and write "
        "the stats to this file; prints the top functions in µs per message",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternate the subscribers this many times and report medians (noise)",
    )
    args = parser.parse_args()

    print(machine())
    print(f"start: {load()}")
    with tempfile.TemporaryDirectory() as workdir:
        red_dir = args.node_red_dir or Path(workdir) / "node-red-install"
        red_skip = "--node-red skip" if args.node_red == "skip" else nodered.install(red_dir)
        if red_skip:
            print(f"Node-RED: skipped ({red_skip})")
        else:
            print(f"Node-RED {nodered.version(red_dir)} in {red_dir}")
        with broker(args.broker_port) as mqtt:
            measure(args, mqtt, None if red_skip else red_dir, Path(workdir))
    print(f"end: {load()}")


@dataclass
class Phase:
    name: str
    rates: list[float]
    cpu: list[float]
    """Consumer CPU µs per message, every process."""
    broker: list[float]
    """Broker CPU µs per message."""

    def add(self, messages: int, seconds: float, cpu: float, broker_cpu: float) -> str:
        self.rates.append(messages / seconds)
        self.cpu.append(cpu / messages * 1e6)
        self.broker.append(broker_cpu / messages * 1e6)
        return (
            f"{self.name:<22} {messages / seconds:>8,.0f} msg/s  ({seconds:6.2f}s; CPU "
            f"{self.cpu[-1]:5.0f} µs/msg, broker {self.broker[-1]:4.0f} µs/msg)"
        )


def measure(args: argparse.Namespace, mqtt: Broker, red_dir: Path | None, workdir: Path) -> None:
    run = uuid.uuid4().hex[:8]
    n = args.ingesters
    rounds = []
    for i in range(args.rounds):
        group = f"fw{run}{i}" if n > 1 else None
        ids = [f"bench-forewarn-{run}-{i}-{k}" for k in range(1, n + 1)]
        names = {
            "bare": f"bench-bare-{run}-{i}",
            "nodered": f"bench-nodered-{run}-{i}",
        }
        prime_session(mqtt.port, names["bare"])
        if red_dir is not None:
            prime_session(mqtt.port, names["nodered"])
        for client_id in ids:
            prime_session(mqtt.port, client_id, f"$share/{group}/{TOPIC}" if group else TOPIC)
        rounds.append((names, ids, group))
    published = publish(mqtt.port, args.messages, args.devices)
    print(
        f"published {args.messages} messages in {published:.1f}s; {args.database}, "
        f"batch_size {args.batch_size or IngestSettings().batch_size}, "
        f"{n} forewarn ingest process(es), readings unique key: {args.readings_unique}"
    )
    label = f"forewarn x{n}" if n > 1 else "forewarn"
    bare, red, forewarn = (
        Phase("bare paho", [], [], []),
        Phase("Node-RED", [], [], []),
        Phase(label, [], [], []),
    )
    messages = args.messages
    for i, (names, ids, group) in enumerate(rounds, start=1):
        cpu, broker_cpu = time.process_time(), mqtt.cpu()
        seconds = bare_subscriber(mqtt.port, names["bare"], messages)
        print(
            f"round {i}: "
            + bare.add(messages, seconds, time.process_time() - cpu, mqtt.cpu() - broker_cpu)
        )
        if red_dir is not None:
            broker_cpu = mqtt.cpu()
            outcome = nodered.run(red_dir, workdir / f"r{i}", mqtt.port, names["nodered"], messages)
            print(
                f"round {i}: "
                + red.add(messages, outcome.seconds, outcome.cpu_seconds, mqtt.cpu() - broker_cpu)
            )
        with database(args.database, args.postgres_url) as url:
            broker_cpu = mqtt.cpu()
            if args.profile is not None:
                seconds, cpu_seconds, note = forewarn_ingest(mqtt.port, ids[0], url, args)
                per = note
            else:
                settings = fleet_config(mqtt.port, ids[0], args, group)
                prepare(url, Settings.model_validate(settings), args)
                outcome_fw = ingesters.run(
                    settings, url, ids, messages, hook=args.hook == "monitors"
                )
                seconds, cpu_seconds = outcome_fw.seconds, outcome_fw.cpu_seconds
                per = "per process: " + " / ".join(f"{c:,}" for c in outcome_fw.per_process)
                if outcome_fw.database_cpu_seconds:
                    per += (
                        f"; PostgreSQL backends "
                        f"{outcome_fw.database_cpu_seconds / messages * 1e6:.0f} µs/msg"
                    )
            line = forewarn.add(messages, seconds, cpu_seconds, mqtt.cpu() - broker_cpu)
            print(f"round {i}: {line} {per}")
            check(url, mqtt, ids, messages)
    print(f"after the rounds: {load()}")
    verdicts = [("bare paho", bare, TARGET_BARE[args.database])]
    if red_dir is not None:
        verdicts.append(("Node-RED", red, TARGET_NODE_RED))
    for phase in (bare, red, forewarn):
        if phase.rates:
            print(
                f"median {phase.name:<14} {median(phase.rates):>8,.0f} msg/s, "
                f"CPU {median(phase.cpu):5.0f} µs/msg + broker {median(phase.broker):4.0f} µs/msg"
            )
    for name, phase, target in verdicts:
        ratio = median(forewarn.rates) / median(phase.rates)
        per_round = ", ".join(
            f"{f / r:.2f}" for f, r in zip(forewarn.rates, phase.rates, strict=True)
        )
        verdict = "meets" if ratio >= target else "MISSES"
        print(
            f"ratio {label} / {name}: {ratio:.2f} (rounds: {per_round}) -- {verdict} the "
            f"{target} target"
        )


def prepare(url: str, settings: Settings, args: argparse.Namespace) -> None:
    """Migrate the scratch database and register the fleet (not timed)."""
    engine = make_engine(url)
    upgrade(engine)
    if args.readings_unique == "ts-first":
        ts_first_unique_key(engine)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(insert(Customer).values(id="c-1", name="Fleet owner", channels=[]))
        connection.execute(
            insert(Site).values(id="s-1", name="Solar park", customer_id="c-1", region="north")
        )
        connection.execute(
            insert(Device),
            [
                {"id": d.id, "site_id": "s-1", "model": d.model, "kind": d.kind}
                | {"registered_at": now}
                for d in settings.devices
            ],
        )
    engine.dispose()


def check(url: str, mqtt: Broker, client_ids: Sequence[str], messages: int) -> None:
    """Every reading stored once, nothing left unacknowledged at the broker."""
    engine = make_engine(url)
    with engine.connect() as connection:
        stored = connection.scalar(select(func.count()).select_from(Reading))
    engine.dispose()
    if stored != 2 * messages:
        sys.exit(f"expected {2 * messages} readings, found {stored}")
    for client_id in client_ids:
        left = bare_subscriber(mqtt.port, client_id, 0, linger=1.0)
        if left:
            sys.exit(f"the broker still held {left} messages for {client_id}: acks were lost")


@dataclass
class Quiet:
    """A monitors sink that opens no tickets: the values never breach the rules anyway."""

    fired: int = 0

    def alert_fired(self, session: Session, alert: Alert, now: datetime) -> None:
        self.fired += 1

    def alert_escalated(self, session: Session, alert: Alert, now: datetime) -> None:
        pass

    def alert_resolved(self, session: Session, alert: Alert, now: datetime) -> None:
        pass


def forewarn_ingest(
    port: int, client_id: str, url: str, args: argparse.Namespace
) -> tuple[float, float, str]:
    """One in-process forewarn round (for --profile); (seconds, CPU seconds, note)."""
    settings = Settings.model_validate(fleet_config(port, client_id, args, None))
    prepare(url, settings, args)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    on_batch: BatchHook | None = None
    hook_note = "no hook: parse, validate, store and ack only (--hook none)"
    if args.hook == "monitors":
        from forewarn.alerting import Monitors

        monitors = Monitors(settings, sessions, Quiet())
        monitors.load()
        on_batch = timed(monitors.on_samples)
        hook_note = f"monitors: {len(settings.monitors)} rules evaluated on every sample"
    ingester = Ingester(
        settings.broker,
        settings.ingest,
        password=None,
        sessions=sessions,
        clock=SystemClock(),
        on_batch=on_batch,
    )
    started, cpu = time.perf_counter(), time.process_time()
    done = profiled(ingester, args.messages, args.profile)
    elapsed = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu
    if on_batch is not None:
        hook_note += f", {HOOK_SECONDS[0] / args.messages * 1e6:.0f} µs/msg in the hook"
        HOOK_SECONDS[0] = 0.0
    engine.dispose()
    if not done:
        sys.exit(f"forewarn committed only {ingester.stats.snapshot()} in 600s")
    return elapsed, cpu_seconds, hook_note


def profiled(ingester: Ingester, messages: int, path: Path) -> bool:
    """Run the ingester in this thread under cProfile until ``messages`` are committed."""
    import cProfile
    import pstats

    outcome = [False]

    def stop_when_done() -> None:
        outcome[0] = ingester.wait_for_committed(messages, timeout=600)
        ingester.stop()

    watcher = threading.Thread(target=stop_when_done, daemon=True)
    watcher.start()
    profile = cProfile.Profile()
    profile.runcall(ingester.run_forever)
    watcher.join()
    profile.dump_stats(path)
    stats = pstats.Stats(profile)
    rows = sorted(
        (
            (tottime, cumtime, calls, func)
            for func, (_, calls, tottime, cumtime, _) in stats.stats.items()
        ),  # type: ignore[attr-defined]
        reverse=True,
    )
    print(f"profile (µs per message; {messages} messages): tottime  cumtime  calls/msg  function")
    for tottime, cumtime, calls, (file, line, name) in rows[:25]:
        where = f"{Path(file).name}:{line}({name})"
        print(
            f"  {tottime / messages * 1e6:7.2f} {cumtime / messages * 1e6:8.2f} "
            f"{calls / messages:9.2f}  {where}"
        )
    return outcome[0]


def ts_first_unique_key(engine: Engine) -> None:
    """Rebuild readings' unique key led by ts instead of device_id (an experiment: the
    per-device order dirties about one index page per device and metric per batch)."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":  # SQLite cannot drop a table constraint
            connection.exec_driver_sql("DROP TABLE readings")
            connection.exec_driver_sql(
                "CREATE TABLE readings (id INTEGER NOT NULL PRIMARY KEY, "
                "device_id VARCHAR(128) NOT NULL, metric VARCHAR(64) NOT NULL, "
                "ts DATETIME NOT NULL, value FLOAT, code VARCHAR(64), "
                "received_at DATETIME NOT NULL, stale BOOLEAN NOT NULL, "
                "CONSTRAINT uq_readings_device_metric_ts UNIQUE (ts, device_id, metric))"
            )
        else:
            connection.exec_driver_sql(
                "ALTER TABLE readings DROP CONSTRAINT uq_readings_device_metric_ts"
            )
            connection.exec_driver_sql(
                "ALTER TABLE readings ADD CONSTRAINT uq_readings_device_metric_ts "
                "UNIQUE (ts, device_id, metric)"
            )


HOOK_SECONDS = [0.0]


def timed(hook: BatchHook) -> BatchHook:
    """``hook``, adding its wall time to HOOK_SECONDS (to show the monitors' share)."""

    def timed_hook(session: Session, samples: Sequence[Sample], now: datetime) -> None:
        started = time.perf_counter()
        try:
            hook(session, samples, now)
        finally:
            HOOK_SECONDS[0] += time.perf_counter() - started

    return timed_hook


def fleet_config(
    port: int, client_id: str, args: argparse.Namespace, share_group: str | None
) -> dict[str, object]:
    ingest: dict[str, object] = {}
    if args.batch_size:
        ingest["batch_size"] = args.batch_size
    broker_settings: dict[str, object] = {"port": port, "client_id": client_id, "topics": [TOPIC]}
    if share_group is not None:
        broker_settings["share_group"] = share_group
    return {
        "broker": broker_settings,
        "ingest": ingest,
        "customers": [{"id": "c-1", "name": "Fleet owner"}],
        "sites": [{"id": "s-1", "name": "Solar park", "customer": "c-1", "region": "north"}],
        "devices": [
            {"id": device_id(i), "site": "s-1", "model": "SUN-5K", "kind": "inverter"}
            for i in range(args.devices)
        ],
        "monitors": [
            {
                "id": "overheating",
                "kind": "threshold",
                "metric": "temperature",
                "above": 85,
                "clear": 75,
                "for": "5m",
            },
            {"id": "no-output", "kind": "threshold", "metric": "power", "below": -1},
            {
                "id": "inverter-fault",
                "kind": "fault_code",
                "codes": {"E42": {"description": "Grid relay failure"}},
            },
        ],
    }


if __name__ == "__main__":
    main()
