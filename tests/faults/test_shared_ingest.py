"""Two ``forewarn run --role ingest`` processes on one MQTT 5 shared subscription.

The broker splits the stream between them; one is killed with SIGKILL in mid-stream
and started again with the same ``--instance`` (as systemd would): every reading is
stored exactly once, because the killed member's unacknowledged messages stay in its
persistent session and are redelivered when it comes back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import func, select

from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.models import Reading
from tests.services import Mosquitto

READINGS = 4000
GROUP = "forewarn"
TOPIC = "devices/+/telemetry"


def config_text(port: int) -> str:
    return (
        f"broker:\n  port: {port}\n  client_id: forewarn-shared-{{instance}}\n"
        f"  share_group: {GROUP}\n  session_expiry: 1h\n  keepalive: 5\n"
        "ingest:\n  batch_size: 200\n  batch_interval: 50ms\n  unknown_devices: accept\n"
    )


def prime_session(broker: Mosquitto, client_id: str) -> None:
    """Create a member's persistent session, as its first start would, so that the
    broker counts it in the group (and queues for it) from the first message on."""
    subscribed = threading.Event()
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(f"$share/{GROUP}/{TOPIC}", qos=1)
    client.connect(broker.host, broker.port, clean_start=True, properties=properties)
    client.loop_start()
    try:
        assert subscribed.wait(10), "could not subscribe"
    finally:
        client.disconnect()
        client.loop_stop()


def publish_all(broker: Mosquitto, errors: list[str]) -> None:
    start = time.time() - 600
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(200)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = []
        for i in range(READINGS):
            payload = orjson.dumps({"ts": start + i * 0.001, "power": float(i)})
            infos.append(client.publish(f"devices/dev-{i % 40}/telemetry", payload, qos=1))
            if i % 100 == 99:
                time.sleep(0.02)
        for info in infos:
            info.wait_for_publish(timeout=10)
            if not info.is_published():
                errors.append("a message was not acknowledged by the broker")
    finally:
        client.disconnect()
        client.loop_stop()


class Ingest:
    """One ``forewarn run --role ingest --instance N`` child."""

    def __init__(self, workdir: Path, config: Path, database_url: str, instance: int) -> None:
        self.log = workdir / f"ingest-{instance}.log"
        self.args = [
            sys.executable, "-m", "forewarn", "run", "-c", str(config),
            "--role", "ingest", "--instance", str(instance),
        ]  # fmt: skip
        self.env = {**os.environ, "FOREWARN_DATABASE_URL": database_url}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise AssertionError(f"ignored SIGTERM:\n{self.log.read_text()}") from None
        return self.process.returncode

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@pytest.fixture
def database(migrated_postgres: str) -> Iterator[Callable[[], int]]:
    engine = make_engine(migrated_postgres)
    sessions = make_sessionmaker(engine)

    def count() -> int:
        with sessions() as session:
            return session.scalar(select(func.count()).select_from(Reading)) or 0

    yield count
    engine.dispose()


@pytest.mark.slow  # three process starts: 30-70 s on a loaded machine
@pytest.mark.mosquitto
def test_two_ingesters_on_a_shared_subscription_store_every_reading_once_across_a_kill(
    mosquitto: Mosquitto,
    migrated_postgres: str,
    database: Callable[[], int],
    tmp_path: Path,
) -> None:
    config = tmp_path / "forewarn.yaml"
    config.write_text(config_text(mosquitto.port))
    for instance in (1, 2):
        prime_session(mosquitto, f"forewarn-shared-{instance}")
    ingesters = [Ingest(tmp_path, config, migrated_postgres, n) for n in (1, 2)]
    errors: list[str] = []
    publisher = threading.Thread(target=publish_all, args=(mosquitto, errors))
    try:
        for ingester in ingesters:
            ingester.start()
        publisher.start()
        wait_until(lambda: database() >= READINGS // 5, ingesters, timeout=90)  # starts
        ingesters[1].kill()
        stored_at_kill = database()
        publisher.join(60)
        assert not publisher.is_alive() and not errors, errors
        # Meanwhile the broker went on queueing half of the stream for the dead member.
        time.sleep(0.5)
        assert database() < READINGS, "the survivor got everything: nothing was tested"
        ingesters[1].start()
        wait_until(lambda: database() >= READINGS, ingesters, timeout=90)
        assert [ingester.stop() for ingester in ingesters] == [0, 0]
    finally:
        for ingester in ingesters:
            if ingester.alive():
                ingester.kill()
        publisher.join(10)

    assert stored_at_kill < READINGS, "the kill came too late to test anything"
    engine = make_engine(migrated_postgres)
    try:
        with make_sessionmaker(engine)() as session:
            values = session.scalars(select(Reading.value)).all()
    finally:
        engine.dispose()
    assert len(values) == READINGS
    assert sorted(values) == [float(i) for i in range(READINGS)]
    for ingester in ingesters:
        log = ingester.log.read_text()
        assert "Traceback" not in log, log
        assert "forewarn-shared-" in log  # each says which session it resumed


def wait_until(condition: Callable[[], bool], children: list[Ingest], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for child in children:
            if child.process is not None and child.process.poll() not in (None, -9):
                raise AssertionError(f"an ingester exited:\n{child.log.read_text()}")
        if time.monotonic() > deadline:
            logs = "\n".join(child.log.read_text() for child in children)
            raise AssertionError(f"timed out waiting; logs:\n{logs}")
        time.sleep(0.05)
