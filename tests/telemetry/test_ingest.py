"""The ingester against a real Mosquitto and a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from forewarn.clock import SystemClock
from forewarn.config.schema import BrokerSettings, IngestSettings
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.models import Customer, Device, Quarantine, Reading, Site
from forewarn.store.schema import upgrade
from forewarn.telemetry.ingest import BatchHook, Ingester
from forewarn.telemetry.sample import STATUS_METRIC, Sample
from tests.services import Mosquitto

DEVICES = ("inv-1", "inv-2", "inv-3")


@dataclass
class Store:
    engine: Engine
    sessions: sessionmaker[Session]

    def count(self, table: type[Reading] | type[Quarantine]) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(table)) or 0


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated store holding one customer, one site and the devices in DEVICES."""
    engine = make_engine(database_url)
    upgrade(engine)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(insert(Customer).values(id="c-1", name="Ana", channels=[]))
        connection.execute(
            insert(Site).values(id="s-1", name="Home", customer_id="c-1", region="north")
        )
        connection.execute(
            insert(Device),
            [
                {"id": d, "site_id": "s-1", "model": "X1", "kind": "inverter", "registered_at": now}
                for d in DEVICES
            ],
        )
    yield Store(engine, make_sessionmaker(engine))
    engine.dispose()


@dataclass
class Recorder:
    """An ``on_batch`` hook that keeps what it was given."""

    samples: list[Sample] = field(default_factory=list)

    def __call__(self, session: Session, samples: Sequence[Sample], now: datetime) -> None:
        self.samples.extend(samples)


def make_ingester(
    broker: Mosquitto,
    store: Store,
    *,
    client_id: str = "forewarn-test",
    on_batch: BatchHook | None = None,
    unknown_devices: Literal["quarantine", "accept"] = "quarantine",
    batch_interval: timedelta = timedelta(milliseconds=50),
) -> Ingester:
    return Ingester(
        BrokerSettings(host=broker.host, port=broker.port, client_id=client_id, keepalive=5),
        IngestSettings(
            batch_size=100,
            batch_interval=batch_interval,
            unknown_devices=unknown_devices,
        ),
        password=None,
        sessions=store.sessions,
        clock=SystemClock(),
        on_batch=on_batch,
    )


def reading(device: str, ts: float, **fields: object) -> tuple[str, bytes]:
    return f"devices/{device}/telemetry", orjson.dumps({"ts": ts, **fields})


def publish(broker: Mosquitto, messages: Sequence[tuple[str, bytes]], pace: float = 0.0) -> None:
    """Publish at QoS 1 and return once the broker has acknowledged every message."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = []
        for i, (topic, payload) in enumerate(messages):
            infos.append(client.publish(topic, payload, qos=1))
            if pace and i % 100 == 99:
                time.sleep(pace)
        for info in infos:
            info.wait_for_publish(timeout=10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def running() -> Iterator[list[Ingester]]:
    """Ingesters appended here are stopped after the test, even when it fails."""
    ingesters: list[Ingester] = []
    yield ingesters
    for ingester in ingesters:
        ingester.stop(timeout=10)


def started(ingester: Ingester, running: list[Ingester]) -> Ingester:
    running.append(ingester)
    ingester.start()
    assert ingester.wait_until_subscribed(10), "the ingester did not subscribe"
    return ingester


@pytest.mark.mosquitto
def test_it_stores_readings_published_over_mqtt(
    mosquitto: Mosquitto, store: Store, running: list[Ingester]
) -> None:
    recorder = Recorder()
    ingester = started(make_ingester(mosquitto, store, on_batch=recorder), running)
    now = time.time()
    messages = [reading(DEVICES[i % 3], now - 60 + i, power=1000.0 + i) for i in range(30)]
    messages.append(reading("inv-1", now, power=0.0, fault="E42"))

    publish(mosquitto, messages)

    assert ingester.wait_for_committed(31, timeout=10)
    with store.sessions() as session:
        rows = session.execute(select(Reading.metric, Reading.value, Reading.code)).all()
        last_seen = session.scalar(select(Device.last_seen_at).where(Device.id == "inv-1"))
    assert len(rows) == 32
    assert ("power", 1029.0, None) in rows
    assert (STATUS_METRIC, None, "E42") in rows
    assert last_seen == datetime.fromtimestamp(now, UTC)
    assert len(recorder.samples) == 32
    counts = ingester.stats.snapshot()
    assert (counts.accepted, counts.rejected, counts.stored) == (31, 0, 32)


@pytest.mark.mosquitto
def test_it_commits_a_changed_status_code_without_waiting_for_the_batch_interval(
    mosquitto: Mosquitto, store: Store, running: list[Ingester]
) -> None:
    recorder = Recorder()
    ingester = make_ingester(
        mosquitto, store, on_batch=recorder, batch_interval=timedelta(minutes=10)
    )
    started(ingester, running)
    now = time.time()

    publish(mosquitto, [reading("inv-1", now, power=0.0, fault="E42")])

    # Within the bound, not the ten minutes a batch of plain readings may wait.
    assert ingester.wait_for_committed(1, timeout=20)
    assert [(s.device_id, s.code) for s in recorder.samples if s.code] == [("inv-1", "E42")]


@pytest.mark.mosquitto
def test_it_quarantines_a_malformed_payload_and_keeps_going(
    mosquitto: Mosquitto, store: Store, running: list[Ingester]
) -> None:
    ingester = started(make_ingester(mosquitto, store), running)
    now = time.time()

    publish(
        mosquitto,
        [
            ("devices/inv-1/telemetry", b'{"ts": 1, "power": '),
            reading("ghost-9", now, power=1.0),
            reading("inv-2", now, power=5.5),
        ],
    )

    assert ingester.wait_for_committed(3, timeout=10)
    with store.sessions() as session:
        quarantined = session.execute(
            select(Quarantine.source, Quarantine.origin, Quarantine.reason).order_by(Quarantine.id)
        ).all()
        values = session.scalars(select(Reading.value)).all()
    assert [q.source for q in quarantined] == ["mqtt", "mqtt"]
    assert quarantined[0].origin == "devices/inv-1/telemetry"
    assert quarantined[0].reason.startswith("payload is not JSON")
    assert quarantined[1].reason == "unknown device 'ghost-9'"
    assert values == [5.5]


@pytest.mark.mosquitto
def test_it_receives_what_was_published_while_it_was_stopped(
    mosquitto: Mosquitto, store: Store, running: list[Ingester]
) -> None:
    first = started(make_ingester(mosquitto, store, client_id="ingest-a"), running)
    first.stop()
    now = time.time()

    publish(mosquitto, [reading("inv-3", now - i, power=float(i)) for i in range(10)])
    second = started(make_ingester(mosquitto, store, client_id="ingest-a"), running)

    assert second.wait_for_committed(10, timeout=10)
    assert store.count(Reading) == 10


@pytest.mark.mosquitto
def test_it_gives_the_hook_only_new_samples_when_the_broker_redelivers(
    mosquitto: Mosquitto, store: Store, running: list[Ingester]
) -> None:
    # The first ingester stores a batch but is held inside the transaction, before its
    # acks; a second one with the same client id takes the session over, so the broker
    # redelivers the unacknowledged messages to it (DUP).
    entered, release = threading.Event(), threading.Event()
    first_samples: list[Sample] = []
    holder: list[Ingester] = []

    def held(session: Session, samples: Sequence[Sample], now: datetime) -> None:
        first_samples.extend(samples)
        entered.set()
        release.wait(20)
        holder[0].stop()  # from its own thread: only asks it to stop after this batch

    first = started(make_ingester(mosquitto, store, client_id="ingest-b", on_batch=held), running)
    holder.append(first)
    now = time.time()
    publish(mosquitto, [reading("inv-1", now - i, power=1.0, temp=30.0) for i in range(5)])
    assert entered.wait(10)

    recorder = Recorder()
    # "accept": no device list to read at start, which on SQLite would wait for the
    # first ingester's write lock (every transaction there begins IMMEDIATE).
    second = started(
        make_ingester(
            mosquitto, store, client_id="ingest-b", on_batch=recorder, unknown_devices="accept"
        ),
        running,
    )
    wait_until(lambda: second.stats.snapshot().received >= 5)
    release.set()

    assert second.wait_for_committed(5, timeout=10)
    assert len(first_samples) == 10
    assert recorder.samples == []
    assert second.stats.snapshot().duplicates == 10
    assert store.count(Reading) == 10


@pytest.mark.mosquitto
def test_it_reconnects_after_a_broker_outage_and_says_so_once_each_way(
    mosquitto: Mosquitto, store: Store, running: list[Ingester], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="forewarn.telemetry.ingest")
    ingester = started(make_ingester(mosquitto, store), running)

    mosquitto.stop()
    wait_until(lambda: not ingester.wait_until_subscribed(0))
    time.sleep(1.5)  # several reconnection attempts fail meanwhile
    mosquitto.start()
    assert ingester.wait_until_subscribed(10)
    publish(mosquitto, [reading("inv-1", time.time(), power=3.0)])

    assert ingester.wait_for_committed(1, timeout=10)
    messages = [r.getMessage() for r in caplog.records if r.name == "forewarn.telemetry.ingest"]
    assert len([m for m in messages if m.startswith("lost the MQTT broker")]) == 1
    assert len([m for m in messages if "is back after" in m]) == 1
    assert not [m for m in messages if m.startswith("cannot reach")]


@pytest.mark.mosquitto
def test_it_leaves_a_batch_it_could_not_store_to_the_broker_and_stores_it_later(
    mosquitto: Mosquitto, store: Store, running: list[Ingester]
) -> None:
    ingester = started(make_ingester(mosquitto, store), running)
    with store.engine.begin() as connection:
        connection.execute(text("ALTER TABLE readings RENAME TO readings_away"))
    now = time.time()

    publish(mosquitto, [reading("inv-2", now - i, power=2.0) for i in range(5)])
    wait_until(lambda: ingester.stats.snapshot().failed_batches >= 1)
    with store.engine.begin() as connection:
        connection.execute(text("ALTER TABLE readings_away RENAME TO readings"))

    assert ingester.wait_for_committed(5, timeout=15)
    assert store.count(Reading) == 5


def test_it_feeds_payloads_through_the_same_gate_and_hook_without_a_broker(
    store: Store,
) -> None:
    recorder = Recorder()
    ingester = Ingester(
        BrokerSettings(port=1),  # never contacted
        IngestSettings(batch_size=3),
        password=None,
        sessions=store.sessions,
        clock=SystemClock(),
        on_batch=recorder,
    )
    now = time.time()
    first = reading("inv-1", now - 1, power=7.0)
    second = reading("inv-1", now, power=8.0)
    ingester.ingest_payloads([(*first, False)])

    ingester.ingest_payloads(
        [(*first, False), (*second, False), (*second, False), (first[0], b"[]", False)]
    )

    assert [s.value for s in recorder.samples] == [7.0, 8.0]
    assert store.count(Reading) == 2
    assert store.count(Quarantine) == 1
    counts = ingester.stats.snapshot()
    assert (counts.accepted, counts.rejected, counts.duplicates, counts.batches) == (4, 1, 2, 3)


@dataclass(frozen=True)
class FrozenClock:
    at: datetime

    def now(self) -> datetime:
        return self.at


def test_it_stores_times_as_the_orm_reads_them(store: Store) -> None:
    received = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    ingester = Ingester(
        BrokerSettings(port=1),
        IngestSettings(),
        password=None,
        sessions=store.sessions,
        clock=FrozenClock(received),
    )
    ts = datetime(2026, 11, 25, 2, 59, 0, 123000, tzinfo=UTC)
    topic, payload = reading("inv-2", ts.timestamp(), power=1.0)
    stale = orjson.dumps({"ts": "2026-11-25T03:59:01+01:00", "power": 2.0})

    ingester.ingest_payloads([(topic, payload, False), (topic, stale, True)])

    with store.sessions() as session:
        rows = session.execute(select(Reading.ts, Reading.stale).order_by(Reading.ts)).all()
        device = session.get(Device, "inv-2")
    assert rows == [(ts, False), (datetime(2026, 11, 25, 2, 59, 1, tzinfo=UTC), True)]
    assert device is not None
    assert device.last_seen_at == ts  # the retained (stale) reading does not count
    assert device.last_received_at == received


def test_it_keeps_the_readings_when_the_hook_fails_and_drops_the_hook_writes(
    store: Store,
) -> None:
    def failing(session: Session, samples: Sequence[Sample], now: datetime) -> None:
        session.execute(
            insert(Quarantine).values(
                received_at=now, source="hook", origin="", payload=b"", reason="half-done"
            )
        )
        raise RuntimeError("a monitor bug")

    ingester = Ingester(
        BrokerSettings(port=1),
        IngestSettings(),
        password=None,
        sessions=store.sessions,
        clock=SystemClock(),
        on_batch=failing,
    )

    ingester.ingest_payloads([(*reading("inv-1", time.time(), power=1.0), False)])

    assert store.count(Reading) == 1
    assert store.count(Quarantine) == 0
    assert ingester.stats.snapshot().hook_failures == 1


def test_it_stores_awkward_ids_and_codes_exactly(store: Store) -> None:
    ingester = Ingester(
        BrokerSettings(port=1),
        IngestSettings(unknown_devices="accept"),
        password=None,
        sessions=store.sessions,
        clock=SystemClock(),
    )
    now = time.time()
    code = 'E"4\\2, {x} NULL'
    ingester.ingest_payloads(
        [
            (*reading("NULL", now, **{"ac.power:l1": -0.0, "fault": code}), False),
            (*reading("a-b_c.d:e", now, big=1e300, small=-5e-324), False),
        ]
    )

    with store.sessions() as session:
        rows = set(
            session.execute(
                select(Reading.device_id, Reading.metric, Reading.value, Reading.code)
            ).all()
        )
    assert rows == {
        ("NULL", "ac.power:l1", -0.0, None),
        ("NULL", STATUS_METRIC, None, code),
        ("a-b_c.d:e", "big", 1e300, None),
        ("a-b_c.d:e", "small", -5e-324, None),
    }


CHILD = """
import os, sys
from forewarn.clock import SystemClock
from forewarn.config.loading import load_config
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.telemetry.ingest import Ingester

config = load_config(sys.argv[1], os.environ)
ingester = Ingester(
    config.settings.broker,
    config.settings.ingest,
    password=config.secrets.broker_password,
    sessions=make_sessionmaker(make_engine(config.database_url)),
    clock=SystemClock(),
)
ingester.start()
if not ingester.wait_until_subscribed(10):
    sys.exit("not subscribed")
print("subscribed", flush=True)
sys.stdin.read()  # until the test closes our stdin (or kills us)
ingester.stop()
"""


def spawn_ingester(config: Path, database_url: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "FOREWARN_DATABASE_URL": database_url},
    )
    assert child.stdout is not None
    ready = threading.Thread(target=child.stdout.readline, daemon=True)
    ready.start()
    ready.join(20)
    assert not ready.is_alive() and child.poll() is None, "the child did not subscribe"
    return child


def finish(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        child.kill()
    child.wait(10)
    for pipe in (child.stdin, child.stdout):
        if pipe is not None:
            pipe.close()


@pytest.mark.mosquitto
def test_it_stores_every_reading_exactly_once_across_a_sigkill(
    mosquitto: Mosquitto, store: Store, database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "forewarn.yaml"
    config.write_text(
        f"broker:\n  port: {mosquitto.port}\n  client_id: crash-test\n"
        "ingest:\n  batch_size: 100\n  batch_interval: 50ms\n  unknown_devices: accept\n"
    )
    start = time.time() - 600
    sent = [reading(f"dev-{i % 50}", start + i * 0.001, power=float(i)) for i in range(3000)]
    child = spawn_ingester(config, database_url)
    publisher = threading.Thread(target=publish, args=(mosquitto, sent, 0.05))
    try:
        publisher.start()
        wait_until(lambda: store.count(Reading) >= 500)
        child.send_signal(signal.SIGKILL)
        finish(child)
        stored_at_kill = store.count(Reading)
        publisher.join(30)

        child = spawn_ingester(config, database_url)
        wait_until(lambda: store.count(Reading) >= 3000, timeout=30)
        assert child.stdin is not None
        child.stdin.close()  # asks it to stop cleanly
        assert child.wait(10) == 0
    finally:
        finish(child)
        publisher.join(30)

    assert stored_at_kill < 3000, "the kill came too late to test anything"
    with store.sessions() as session:
        rows = session.execute(select(Reading.device_id, Reading.ts, Reading.value)).all()
    assert len(rows) == 3000
    assert {row.value for row in rows} == {float(i) for i in range(3000)}


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)
