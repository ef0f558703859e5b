"""Real services for the tests: a private Mosquitto per test and a scratch PostgreSQL database.

With ``FOREWARN_REQUIRE_SERVICES=1`` (set by ``.ci/run``) a missing service fails the test
instead of skipping it, so CI cannot go green without having run them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "FOREWARN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def services_required() -> bool:
    return os.environ.get("FOREWARN_REQUIRE_SERVICES", "") not in {"", "0", "false", "no"}


def unavailable(reason: str) -> None:
    """Skip with a visible reason, or fail when the services are required (CI)."""
    if services_required():
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Mosquitto:
    """A private broker on a free port; ``stop()``/``start()`` simulate an outage."""

    port: int
    workdir: Path
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
        )
        self.process = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited: {err}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


@contextmanager
def running_mosquitto(workdir: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(port=free_port(), workdir=workdir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@contextmanager
def scratch_postgres() -> Iterator[str]:
    """Create a database for one test and drop it afterwards; yields its URL."""
    import psycopg

    name = f"forewarn_test_{uuid.uuid4().hex[:12]}"
    admin = POSTGRES_ADMIN_URL
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL not reachable at {admin}: {exc}".strip())
        raise  # unreachable: unavailable() raises
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
