"""Bytes on disk per row of the big tables, for docs/retention.md.

    python benchmarks/sizes.py --database sqlite
    python benchmarks/sizes.py --database postgresql      # FOREWARN_TEST_POSTGRES_URL
    python benchmarks/sizes.py --database postgresql --migrate-from 0050   # conversion time

Method. A fresh database at the head revision; ``--devices`` devices report ``--metrics``
metrics every ``--interval`` seconds for one day (rows as the ingester writes them:
device id like ``inv-000123``, metric names like ``ac_power``, a float value, device and
receive times). Then ``--rows`` rows each of notifications (a 160-character SMS text and a
template context as forewarn writes them), quarantine (a 300-byte payload), inbound
messages, delivery receipts, alert events and ticket events. Sizes include every index:
PostgreSQL ``pg_total_relation_size`` (summed over the partitions of ``readings``) after
``VACUUM ANALYZE``; SQLite the ``dbstat`` pages of each table and its indexes.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forewarn.config.schema import RetentionSettings
from forewarn.store.contacts import InboundMessage, ProviderEvent
from forewarn.store.engine import make_engine
from forewarn.store.models import (
    Alert,
    AlertEvent,
    Notification,
    Quarantine,
    Reading,
    Ticket,
    TicketEvent,
)
from forewarn.store.retention import Retention
from forewarn.store.schema import upgrade

METRICS = ("ac_power", "dc_voltage", "temperature", "grid_frequency", "energy_today", "status")
TABLES = (
    "readings",
    "notifications",
    "quarantine",
    "inbound_messages",
    "provider_events",
    "alert_events",
    "ticket_events",
)
SMS = (
    "Sunwise: we detected a fault on your inverter SunPeak 5K at Silva home (grid isolation "
    "fault). Technician Ana Costa will visit tomorrow 09:00-12:00. Reply HELP for help."
)


@contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/sizes.db"
        return
    import psycopg

    admin = os.environ.get(
        "FOREWARN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"forewarn_sizes_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill(engine: Engine, devices: int, metrics: int, interval: int, rows: int) -> int:
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    readings = 0
    batch: list[dict[str, Any]] = []
    with engine.begin() as connection:
        for step in range(86_400 // interval):
            ts = start + timedelta(seconds=step * interval)
            for device in range(devices):
                for metric in METRICS[:metrics]:
                    batch.append(
                        {
                            "device_id": f"inv-{device:06d}",
                            "metric": metric,
                            "ts": ts,
                            "value": 1234.5 + device + step / 7,
                            "code": None,
                            "received_at": ts + timedelta(milliseconds=350),
                            "stale": False,
                        }
                    )
            if len(batch) >= 20_000:
                connection.execute(insert(Reading), batch)
                readings += len(batch)
                batch = []
        if batch:
            connection.execute(insert(Reading), batch)
            readings += len(batch)
        now = start + timedelta(hours=12)
        connection.execute(
            insert(Notification),
            [
                {
                    "dedupe_key": f"ticket:{n}:fault_notice:customer:c-{n:06d}:sms",
                    "ticket_id": None,
                    "event": "fault_notice",
                    "recipient_role": "customer",
                    "recipient_id": f"c-{n:06d}",
                    "channel": "sms",
                    "address": "+351912000101",
                    "locale": "en",
                    "context": {
                        "customer": {"name": "Marta Silva", "locale": "en"},
                        "site": {"name": "Silva home", "region": "lisbon-west"},
                        "device": {"id": "inv-000101", "model": "SunPeak 5K"},
                        "fault": "grid isolation fault",
                        "window": "tomorrow 09:00-12:00",
                        "technician": {"name": "Ana Costa"},
                    },
                    "critical": False,
                    "status": "delivered",
                    "attempts": 1,
                    "next_attempt_at": now,
                    "provider": "twilio",
                    "provider_message_id": f"SM{uuid.uuid4().hex}",
                    "body": SMS,
                    "created_at": now,
                    "sent_at": now,
                    "delivered_at": now,
                }
                for n in range(rows)
            ],
        )
        connection.execute(
            insert(Quarantine),
            [
                {
                    "received_at": now,
                    "source": "mqtt",
                    "origin": f"devices/inv-{n:06d}/telemetry",
                    "payload": b'{"ts": 1764480000, "ac_power": "NaN"}'.ljust(300, b" "),
                    "reason": "ac_power: not a finite number",
                }
                for n in range(rows)
            ],
        )
        connection.execute(
            insert(InboundMessage),
            [
                {
                    "provider": "twilio",
                    "message_sid": f"SM{uuid.uuid4().hex}",
                    "sender_role": "customer",
                    "sender_id": f"c-{n:06d}",
                    "sender_masked": "+35191****101",
                    "body": "Thanks, tomorrow morning is fine. Please ring the bell.",
                    "intent": "text",
                    "reply": None,
                    "received_at": now,
                }
                for n in range(rows)
            ],
        )
        connection.execute(
            insert(ProviderEvent),
            [
                {
                    "provider": "twilio",
                    "event_id": f"SM{uuid.uuid4().hex}:delivered",
                    "notification_id": n,
                    "status": "delivered",
                    "error_code": None,
                    "outcome": "delivered",
                    "received_at": now,
                    "payload": {"MessageStatus": "delivered", "To": "+35191****101"},
                }
                for n in range(rows)
            ],
        )
        alert = connection.execute(
            insert(Alert).returning(Alert.id),
            {
                "fingerprint": "f",
                "rule_id": "r",
                "rule_version": "v3",
                "subject": "inv-000101",
                "state": "firing",
                "severity": "major",
                "summary": "hot",
                "pending_since": now,
            },
        ).scalar_one()
        ticket = connection.execute(
            insert(Ticket).returning(Ticket.id),
            {
                "kind": "repair",
                "fingerprint": "f",
                "status": "accepted",
                "priority": "p2",
                "title": "fault",
                "opened_at": now,
                "updated_at": now,
            },
        ).scalar_one()
        connection.execute(
            insert(AlertEvent),
            [
                {
                    "alert_id": alert,
                    "at": now,
                    "from_state": "pending",
                    "to_state": "firing",
                    "rule_version": "v3",
                    "evidence": {"value": 81.5, "level": 75, "for": "4s", "readings": 3},
                }
                for n in range(rows)
            ],
        )
        connection.execute(
            insert(TicketEvent),
            [
                {
                    "ticket_id": ticket,
                    "at": now,
                    "kind": "status_changed",
                    "actor": "technician:t-ana",
                    "from_status": "assigned",
                    "to_status": "accepted",
                    "detail": {"via": "sms"},
                }
                for n in range(rows)
            ],
        )
    return readings


def sizes(engine: Engine) -> dict[str, int]:
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
            found = {}
            for table in TABLES:
                found[table] = connection.scalar(
                    text(
                        "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) "
                        "FROM pg_inherits WHERE inhparent = CAST(:t AS regclass)"
                    ),
                    {"t": table},
                ) or connection.scalar(
                    text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": table}
                )
            return found
    with engine.connect() as connection:
        pages = {
            row[0]: row[1]
            for row in connection.exec_driver_sql(
                "SELECT m.tbl_name, sum(d.pgsize) FROM dbstat AS d "
                "JOIN sqlite_master AS m ON d.name = m.name GROUP BY m.tbl_name"
            )
        }
        return {table: int(pages.get(table, 0)) for table in TABLES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--metrics", type=int, default=5, choices=range(1, len(METRICS) + 1))
    parser.add_argument("--interval", type=int, default=60, help="seconds between readings")
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the other tables")
    parser.add_argument(
        "--expire",
        action="store_true",
        help="then time the retention job removing every reading (batches of 5 000)",
    )
    parser.add_argument(
        "--migrate-from",
        metavar="REVISION",
        help="fill a database at this revision, then time the upgrade to head (e.g. 0050: "
        "how long converting readings to partitions takes)",
    )
    args = parser.parse_args()
    with database(args.database) as url:
        engine = make_engine(url)
        try:
            upgrade(engine, args.migrate_from or "head")
            readings = fill(engine, args.devices, args.metrics, args.interval, args.rows)
            if args.migrate_from:
                started = time.perf_counter()
                upgrade(engine)
                took = time.perf_counter() - started
                print(
                    f"upgrade {args.migrate_from} -> head with {readings} readings: {took:.1f} s "
                    f"({readings / took:,.0f} readings/s)"
                )
            measured = sizes(engine)
            clean_up = expire_readings(engine) if args.expire else None
        finally:
            engine.dispose()
    print(
        f"{args.database} on {platform.node()} ({platform.machine()}, "
        f"{os.cpu_count()} CPUs), python {platform.python_version()}"
    )
    per_day = 86_400 // args.interval
    for table in TABLES:
        count = readings if table == "readings" else args.rows
        total = float(measured[table])
        line = f"{table:18} {count:>9} rows {total / 1e6:9.1f} MB {total / count:7.0f} B/row"
        if table == "readings":
            device_day = total / args.devices
            line += (
                f"  = {device_day / 1e6:.2f} MB per device per day "
                f"({args.metrics} metrics every {args.interval}s, {per_day * args.metrics} rows)"
            )
        print(line)
    if clean_up is not None:
        print(clean_up)


def expire_readings(engine: Engine) -> str:
    """Run the retention job with every reading expired; time it and its longest batch."""
    batches: list[float] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        conn.info["started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _end(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("DELETE", "DROP")):
            batches.append(time.perf_counter() - conn.info["started"])

    settings = RetentionSettings(readings=timedelta(days=1), time_budget=timedelta(hours=1))
    started = time.perf_counter()
    report = Retention(engine, settings).run(datetime.now(UTC) + timedelta(days=10))
    took = time.perf_counter() - started
    return (
        f"retention: {report.deleted.get('readings', 0)} readings deleted, partitions dropped "
        f"{report.partitions_dropped or 'none'} in {took:.1f} s; {len(batches)} statements, "
        f"longest {max(batches, default=0) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
