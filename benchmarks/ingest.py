"""Ingest throughput: forewarn's full pipeline against a bare paho subscriber, same run.

    python benchmarks/ingest.py --messages 200000 --database sqlite
    python benchmarks/ingest.py --messages 200000 --database postgresql

Method. N QoS-1 readings for 1 000 devices are published to the broker BEFORE any
subscriber connects, into persistent sessions primed for each subscriber (created with a
session expiry; the subscribers resume them with ``clean_start=False``). Each subscriber
is then timed from its connect until the last message is consumed: for the bare
subscriber, counted; for forewarn, committed (parsed, validated, stored, evaluated by
the monitors) and acknowledged. Publishing first measures the consumers alone: on this
2-core machine a concurrent publisher would compete with the subscriber and the broker
for the CPU, and the result would measure the publisher as much as the consumer. The
broker runs with ``max_queued_messages 0`` (the default of 1 000 silently drops the rest
of an offline session's queue) and ``max_inflight_messages 0``.

The two subscribers take turns (``--rounds``, default 3, each forewarn round on a fresh
database) and the medians are compared, because other work on a shared machine makes
single runs vary by +-20%.

After each forewarn run the benchmark checks that every reading was stored and that the
broker holds nothing more for forewarn's session (every message was acknowledged).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

from forewarn.clock import SystemClock
from forewarn.config.schema import IngestSettings, Settings
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.models import Alert, Customer, Device, Reading, Site
from forewarn.store.schema import upgrade
from forewarn.telemetry.ingest import BatchHook, Ingester
from forewarn.telemetry.sample import Sample

TOPIC = "devices/+/telemetry"
SESSION_EXPIRY = 3600


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
        help="run one forewarn round under cProfile (in the ingest thread) and write the "
        "stats to this file; prints the top functions in µs per message",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternate bare/forewarn runs this many times and report medians (noise)",
    )
    args = parser.parse_args()

    print(machine())
    with broker(args.broker_port) as port:
        run = uuid.uuid4().hex[:8]
        rounds = [
            (f"bench-bare-{run}-{i}", f"bench-forewarn-{run}-{i}") for i in range(args.rounds)
        ]
        for pair in rounds:
            for client_id in pair:
                prime_session(port, client_id)
        published = publish(port, args.messages, args.devices)
        print(
            f"published {args.messages} messages in {published:.1f}s, queued for "
            f"{2 * args.rounds} sessions; {args.database}, "
            f"batch_size {args.batch_size or IngestSettings().batch_size}, "
            f"readings unique key: {args.readings_unique}"
        )
        bare_rates, forewarn_rates = [], []
        for i, (bare_id, forewarn_id) in enumerate(rounds, start=1):
            cpu = time.process_time()
            bare = bare_subscriber(port, bare_id, args.messages)
            bare_cpu = (time.process_time() - cpu) / args.messages * 1e6
            bare_rates.append(args.messages / bare)
            print(
                f"round {i}: bare paho {args.messages / bare:>7,.0f} msg/s "
                f"({bare:.2f}s, {bare_cpu:.0f} µs CPU/msg)"
            )
            with database(args.database, args.postgres_url) as url:
                elapsed, cpu_per_message, hook = forewarn_ingest(port, forewarn_id, url, args)
            forewarn_rates.append(args.messages / elapsed)
            print(
                f"round {i}: forewarn  {args.messages / elapsed:>7,.0f} msg/s "
                f"({elapsed:.2f}s, {cpu_per_message:.0f} µs CPU/msg in this process; {hook})"
            )
        bare_rate, forewarn_rate = median(bare_rates), median(forewarn_rates)
        ratio = forewarn_rate / bare_rate
        target = 0.5 if args.database == "sqlite" else 0.4
        verdict = "meets" if ratio >= target else "MISSES"
        print(f"median bare paho subscriber: {bare_rate:>7,.0f} msg/s")
        print(f"median forewarn ingest:      {forewarn_rate:>7,.0f} msg/s")
        print(f"ratio forewarn / bare paho: {ratio:.2f} ({verdict} the {target} target)")


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
    settings = Settings.model_validate(fleet_config(port, client_id, args))
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
    sessions = make_sessionmaker(engine)
    on_batch: BatchHook | None = None
    try:
        from forewarn.alerting import Monitors
    except ImportError:
        hook_note = "NO monitors: forewarn.alerting is missing, the hook does nothing"
    else:
        if args.hook == "monitors":
            monitors = Monitors(settings, sessions, Quiet())
            monitors.load()
            on_batch = timed(monitors.on_samples)
            hook_note = f"monitors: {len(settings.monitors)} rules evaluated on every sample"
        else:
            hook_note = "no hook: parse, validate, store and ack only (--hook none)"
    ingester = Ingester(
        settings.broker,
        settings.ingest,
        password=None,
        sessions=sessions,
        clock=SystemClock(),
        on_batch=on_batch,
    )
    started, cpu = time.perf_counter(), time.process_time()
    if args.profile is not None:
        done = profiled(ingester, args.messages, args.profile)
    else:
        ingester.start()
        done = ingester.wait_for_committed(args.messages, timeout=600)
    elapsed = time.perf_counter() - started
    cpu_per_message = (time.process_time() - cpu) / args.messages * 1e6
    if on_batch is not None:
        hook_note += f", {HOOK_SECONDS[0] / args.messages * 1e6:.0f} µs/msg in the hook"
        HOOK_SECONDS[0] = 0.0
    ingester.stop()
    if not done:
        sys.exit(f"forewarn committed only {ingester.stats.snapshot()} in 600s")
    with sessions() as session:
        stored = session.scalar(select(func.count()).select_from(Reading))
    engine.dispose()
    if stored != 2 * args.messages:
        sys.exit(f"expected {2 * args.messages} readings, found {stored}")
    left = bare_subscriber(port, client_id, 0, linger=1.0)
    if left:
        sys.exit(f"the broker still held {left} messages for forewarn: acks were lost")
    return elapsed, cpu_per_message, hook_note


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


def fleet_config(port: int, client_id: str, args: argparse.Namespace) -> dict[str, object]:
    ingest: dict[str, object] = {}
    if args.batch_size:
        ingest["batch_size"] = args.batch_size
    return {
        "broker": {"port": port, "client_id": client_id, "topics": [TOPIC]},
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


def device_id(i: int) -> str:
    return f"inv-{i:05d}"


def publish(port: int, messages: int, devices: int) -> float:
    """Publish ``messages`` readings at QoS 1; return the seconds it took."""
    acked = threading.Semaphore(0)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_publish = lambda *_: acked.release()
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.perf_counter()
    base = time.time() - messages / devices - 60  # each device reports once a second
    window = 20_000  # outstanding messages; paho's 16-bit message ids must not wrap
    for i in range(messages):
        if i >= window:
            acked.acquire()
        device, tick = i % devices, i // devices
        payload = orjson.dumps(
            {"ts": round(base + tick, 3), "power": 3000.0 + i % 977, "temperature": 41.5}
        )
        client.publish(f"devices/{device_id(device)}/telemetry", payload, qos=1)
    for _ in range(min(window, messages)):
        acked.acquire()
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return elapsed


def session_properties() -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = SESSION_EXPIRY
    return properties


def prime_session(port: int, client_id: str) -> None:
    """Create the persistent session so that messages are queued for it."""
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(TOPIC, qos=1)
    client.connect("127.0.0.1", port, clean_start=True, properties=session_properties())
    client.loop_start()
    if not subscribed.wait(10):
        sys.exit("could not subscribe")
    client.disconnect()
    client.loop_stop()


def bare_subscriber(port: int, client_id: str, expected: int, linger: float = 0.0) -> float:
    """Consume the session's queue, counting only; the elapsed seconds until
    ``expected`` messages arrived, or (with ``linger``) how many came within it."""
    count = 0
    finished = 0.0

    def on_message(client: mqtt.Client, _userdata: object, _message: mqtt.MQTTMessage) -> None:
        nonlocal count, finished
        count += 1
        if count == expected:
            finished = time.perf_counter()
            client.disconnect()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_message = on_message
    started = time.perf_counter()
    client.connect("127.0.0.1", port, clean_start=False, properties=session_properties())
    if linger:
        deadline = time.monotonic() + linger
        while time.monotonic() < deadline:
            client.loop(0.1)
        client.disconnect()
        return count
    client.loop_forever()
    return finished - started


@contextmanager
def broker(port: int | None) -> Iterator[int]:
    if port is not None:
        yield port
        return
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with tempfile.TemporaryDirectory() as workdir:
        conf = Path(workdir) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "log_dest stderr\nlog_type error\nmax_queued_messages 0\nmax_inflight_messages 0\n"
        )
        process = subprocess.Popen([binary, "-c", str(conf)])
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        sys.exit("mosquitto did not start")
                    time.sleep(0.05)
            yield port
        finally:
            process.terminate()
            process.wait(10)


@contextmanager
def database(kind: str, postgres_url: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as workdir:
            yield f"sqlite:///{workdir}/bench.db"
        return
    import psycopg

    name = f"forewarn_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in subprocess.run(
                ["lscpu"], capture_output=True, text=True, check=False
            ).stdout.splitlines()
            if line.startswith("Model name")
        ),
        platform.processor(),
    )
    mosquitto = subprocess.run(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-h"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()[0]
    return (
        f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
        f"{mosquitto}, SQLite {sqlite3.sqlite_version}"
    )


if __name__ == "__main__":
    main()
