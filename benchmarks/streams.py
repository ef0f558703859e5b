"""What the MQTT benchmarks share: a private broker, the queued stream, the bare paho
subscriber, scratch databases and per-process CPU and memory from /proc."""

from __future__ import annotations

import contextlib
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

TOPIC = "devices/+/telemetry"
SESSION_EXPIRY = 3600


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


def prime_session(port: int, client_id: str, topic_filter: str = TOPIC) -> None:
    """Create the persistent session so that messages are queued for it."""
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(topic_filter, qos=1)
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


@dataclass(frozen=True)
class Broker:
    port: int
    pid: int | None
    """Our private Mosquitto's process id (None for a broker we did not start)."""

    def cpu(self) -> float:
        return cpu_seconds(self.pid) if self.pid is not None else 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_cpu(url: str) -> dict[int, float]:
    """CPU seconds of every PostgreSQL backend serving ``url``'s database (the server
    runs on this machine); empty for SQLite, which runs inside the ingest processes."""
    if not url.startswith("postgresql"):
        return {}
    import psycopg

    with psycopg.connect(url) as connection:
        pids = [
            row[0]
            for row in connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
        ]
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError):  # gone meanwhile
            found[pid] = cpu_seconds(pid)
    return found


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def load() -> str:
    """The load averages as ``uptime`` prints them."""
    return "load average " + ", ".join(Path("/proc/loadavg").read_text().split()[:3])


@contextmanager
def broker(port: int | None) -> Iterator[Broker]:
    if port is not None:
        yield Broker(port, None)
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
            yield Broker(port, process.pid)
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


class RawPublisher:
    """A QoS-1 publisher that writes PUBLISH frames straight to the socket and counts
    the broker's PUBACKs: a few µs per message, so that on a loaded 2-core machine the
    stream itself is not what limits the rate (paho's publish costs tens of µs and its
    network thread starves). ``acked`` is what the broker has taken."""

    def __init__(self, port: int, window: int = 20_000) -> None:
        from forewarn.telemetry import mqtt_wire as wire

        self._wire = wire
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.sendall(
            wire.connect(f"bench-pub-{uuid.uuid4().hex[:8]}", keepalive=0, session_expiry=0)
        )
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._connack = False
        self._window = window
        self._next_id = 0
        self.sent = 0
        self.acked = 0
        while not self._connack:
            self._read(block=True)

    def publish(self, topic: str, payload: bytes) -> None:
        while self.sent - self.acked >= self._window:
            self.flush()
            self._read(block=True)
        self._next_id = self._next_id % 0xFFFF + 1
        topic_bytes = topic.encode()
        body = (
            len(topic_bytes).to_bytes(2, "big")
            + topic_bytes
            + self._next_id.to_bytes(2, "big")
            + b"\x00"
            + payload
        )
        self._out.append(b"\x32" + self._wire.varint(len(body)) + body)
        self.sent += 1

    def flush(self) -> None:
        """Send what :meth:`publish` queued and count the PUBACKs that arrived."""
        if self._out:
            self._sock.sendall(b"".join(self._out))
            self._out = []
        self._read(block=False)

    def drain(self, timeout: float = 30.0) -> None:
        self.flush()
        deadline = time.monotonic() + timeout
        while self.acked < self.sent and time.monotonic() < deadline:
            self._read(block=True)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.sendall(b"\xe0\x00")
        self._sock.close()

    def _read(self, *, block: bool) -> None:
        self._sock.settimeout(1.0 if block else 0.0)
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, TimeoutError):
            return
        if not data:
            raise ConnectionError("the broker closed the publisher's connection")
        buffer = self._buffer
        buffer += data
        position = 0
        while len(buffer) - position >= 2:
            length, start = self._wire.read_varint(buffer, position + 1)
            if start + length > len(buffer):
                break
            kind = buffer[position] & 0xF0
            if kind == 0x40:
                self.acked += 1
            elif kind == 0x20:
                self._connack = True
            position = start + length
        del buffer[:position]
