"""Scaling curve of ingest: 1 -> N forewarn ingest processes on one MQTT 5 shared
subscription, same run, same queued stream, plus the capacity model built from it.

    python benchmarks/scale.py --messages 100000 --database postgresql --processes 1 2
    python benchmarks/scale.py --messages 100000 --database sqlite --processes 1 2

Each round gives every process count its own shared-subscription group (primed before
the stream is published, so the broker queues the whole stream for each group), then runs
each count on a fresh database: the processes are built as ``forewarn run --role ingest
--instance N`` builds them (gate, store, monitors' hook, PUBACK after commit), and the
time runs from the start signal until all of them together committed every message.
After each run every reading is checked to be stored once and every session to hold
nothing unacknowledged. The CPU of every ingest process and of the broker is added up.

The capacity model then turns the medians into what a fleet needs: messages per second
from devices x reporting interval, ingest CPU cores and processes at 50% utilisation
(headroom for catch-up after an outage), broker CPU, and database growth per day from
the bytes each reading took in this run (PostgreSQL: every partition of ``readings``
with its indexes; SQLite: the database file).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from pathlib import Path
from statistics import median

import ingesters
from ingest import TOPIC, check, fleet_config, prepare
from sqlalchemy import text
from streams import broker, database, load, machine, prime_session, publish

from forewarn.config.schema import Settings
from forewarn.store.engine import make_engine

FLEETS = ((10_000, 60), (10_000, 10), (100_000, 60), (100_000, 10), (1_000_000, 60))
"""(devices, seconds between two messages of one device)"""
UTILISATION = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "FOREWARN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    args.hook = "monitors"
    args.readings_unique = "schema"
    print(machine())
    print(f"start: {load()}")
    run = uuid.uuid4().hex[:8]
    rates: dict[int, list[float]] = {n: [] for n in args.processes}
    cpus: dict[int, list[float]] = {n: [] for n in args.processes}
    brokers: dict[int, list[float]] = {n: [] for n in args.processes}
    dbs: dict[int, list[float]] = {n: [] for n in args.processes}
    row_bytes: list[float] = []
    with broker(None) as mqtt, tempfile.TemporaryDirectory():
        plan = []
        for i in range(args.rounds):
            for n in args.processes:
                group = f"scale{run}{i}n{n}"
                ids = [f"scale-{run}-{i}-{n}-{k}" for k in range(1, n + 1)]
                for client_id in ids:
                    prime_session(mqtt.port, client_id, f"$share/{group}/{TOPIC}")
                plan.append((i + 1, n, group, ids))
        seconds = publish(mqtt.port, args.messages, args.devices)
        print(
            f"published {args.messages} messages ({2 * args.messages} readings) in {seconds:.1f}s"
        )
        for round_no, n, group, ids in plan:
            with database(args.database, args.postgres_url) as url:
                settings = fleet_config(mqtt.port, ids[0], args, group)
                prepare(url, Settings.model_validate(settings), args)
                broker_before = mqtt.cpu()
                outcome = ingesters.run(settings, url, ids, args.messages)
                broker_cpu = mqtt.cpu() - broker_before
                check(url, mqtt, ids, args.messages)
                row_bytes.append(readings_bytes(url) / (2 * args.messages))
            rate = args.messages / outcome.seconds
            rates[n].append(rate)
            cpus[n].append(outcome.cpu_seconds / args.messages * 1e6)
            brokers[n].append(broker_cpu / args.messages * 1e6)
            dbs[n].append(outcome.database_cpu_seconds / args.messages * 1e6)
            print(
                f"round {round_no}: {n} process(es) {rate:>8,.0f} msg/s ({outcome.seconds:.2f}s; "
                f"ingest CPU {cpus[n][-1]:.0f} µs/msg, database {dbs[n][-1]:.0f}, "
                f"broker {brokers[n][-1]:.0f} µs/msg; "
                f"per process {' / '.join(f'{c:,}' for c in outcome.per_process)}); {load()}"
            )
    base = median(rates[args.processes[0]])
    print("\nscaling curve (medians):")
    print("| processes | msg/s | speed-up | ingest CPU µs/msg | database | broker |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.processes:
        print(
            f"| {n} | {median(rates[n]):,.0f} | {median(rates[n]) / base:.2f} | "
            f"{median(cpus[n]):.0f} | {median(dbs[n]):.0f} | {median(brokers[n]):.0f} |"
        )
    first = args.processes[0]
    model(
        median(cpus[first]),
        median(dbs[first]),
        median(brokers[first]),
        median(row_bytes),
        median(rates[first]),
        args.database,
    )
    print(f"end: {load()}")


def readings_bytes(url: str) -> float:
    """Bytes the readings take on disk, with their indexes."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                size = connection.scalar(
                    text(
                        "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) + "
                        "pg_total_relation_size('readings') FROM pg_inherits "
                        "WHERE inhparent = 'readings'::regclass"
                    )
                )
                return float(size or 0)
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            path = url.removeprefix("sqlite:///")
            return float(Path(path).stat().st_size)
    finally:
        engine.dispose()


def model(
    cpu_us: float, db_us: float, broker_us: float, bytes_per_reading: float, one: float, db: str
) -> None:
    """The capacity table for the fleets in FLEETS (two readings per message, as here)."""
    print(
        f"\ncapacity model from this run: ingest {cpu_us:.0f} µs CPU/msg, database {db_us:.0f} "
        f"µs CPU/msg, broker {broker_us:.0f} "
        f"µs CPU/msg, {bytes_per_reading:.0f} bytes per reading on {db} (2 readings/msg); one "
        f"process reached {one:,.0f} msg/s; cores at {UTILISATION:.0%} utilisation"
    )
    print(
        "| devices | every | msg/s | ingest cores | ingest processes | database cores "
        "| broker cores | DB growth/day |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for devices, every in FLEETS:
        rate = devices / every
        cores = rate * cpu_us / 1e6 / UTILISATION
        processes = max(1, -(-cores // 1))
        broker_cores = rate * broker_us / 1e6 / UTILISATION
        db_cores = rate * db_us / 1e6 / UTILISATION
        growth = rate * 2 * 86_400 * bytes_per_reading
        print(
            f"| {devices:,} | {every}s | {rate:,.0f} | {cores:.1f} | {processes:.0f} | "
            f"{db_cores:.1f} | "
            f"{broker_cores:.1f} | {growth / 1e9:,.1f} GB |"
        )


if __name__ == "__main__":
    main()
