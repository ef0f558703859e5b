"""Real ``forewarn run`` processes for the fault suite: start, probe, kill, stop.

Each process is ``sys.executable -m forewarn run -c <config>`` on loopback, with its log
in a file (shown when a test fails) and every wait bounded by an explicit deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.services import free_port

INTERVAL = 1.0
"""Seconds: the election interval and every scheduled job's interval in the fault suite."""


def fault_config(
    broker_port: int | None = None, *, interval: float = INTERVAL, client_id: str = "faults"
) -> str:
    """A small but complete forewarn.yaml with every scheduled job at ``interval``."""
    return f"""
broker:
  host: 127.0.0.1
  port: {broker_port or 1}
  client_id: forewarn-{client_id}
scheduler:
  offline_check_interval: {interval}s
  peer_check_interval: {interval}s
  outbox_interval: {interval}s
  orphan_check_interval: {interval}s
  election_interval: {interval}s
ticketing:
  sweep_interval: {interval}s
health:
  late_after_intervals: 3
  mqtt_grace: 5s
"""


@dataclass
class Forewarn:
    """One ``forewarn run`` child process."""

    workdir: Path
    database_url: str
    roles: tuple[str, ...] = ()
    broker_port: int | None = None
    name: str = "forewarn"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    client_id: str = "faults"
    interval: float = INTERVAL
    extra_yaml: str = ""
    """More of forewarn.yaml (a fleet, monitors), appended to the fault config."""
    # One client for every probe: a new one per request costs a CA bundle load each time.
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=2.0))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> None:
        config = self.workdir / f"{self.name}.yaml"
        config.write_text(
            fault_config(self.broker_port, interval=self.interval, client_id=self.client_id)
            + f"web:\n  host: 127.0.0.1\n  port: {self.port}\n"
            + self.extra_yaml
        )
        args = [sys.executable, "-m", "forewarn", "run", "-c", str(config)]
        for role in self.roles:
            args += ["--role", role]
        env = {**os.environ, "FOREWARN_DATABASE_URL": self.database_url}
        # No token from the caller's environment; a test may give its own (extra_env).
        env.pop("FOREWARN_API_TOKEN", None)
        env.pop("FOREWARN_TOKENS", None)
        env.update(self.extra_env)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir
            )

    def wait_up(self, timeout: float = 30.0) -> None:
        """Until ``/healthz`` answers; fails with the log if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                code = self.process.returncode
                raise AssertionError(f"{self.name} exited {code}:\n{self.tail()}")
            try:
                if self.http.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not come up in {timeout}s:\n{self.tail()}")

    def readyz(self) -> tuple[int, dict[str, Any]]:
        response = self.http.get(f"{self.url}/readyz")
        return response.status_code, response.json()

    def metrics(self) -> str:
        return self.http.get(f"{self.url}/metrics").text

    def role(self) -> str:
        """``leader``, ``standby`` or ``unreachable``."""
        try:
            return str(self.readyz()[1]["scheduler"]["this_process"])
        except (httpx.HTTPError, KeyError, ValueError):
            return "unreachable"

    def leader_since(self) -> datetime | None:
        since = self.readyz()[1]["scheduler"]["leader_since"]
        return datetime.fromisoformat(since) if since else None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        """``kill -9``: no clean-up at all, the lock connection just drops."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit status (kills after ``timeout``)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # in case a test left it stopped
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                raise AssertionError(
                    f"{self.name} ignored SIGTERM for {timeout}s:\n{self.tail()}"
                ) from None
        return self.process.returncode

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def wait_for(condition: Any, timeout: float, step: float = 0.05) -> float:
    """Poll ``condition()`` until true; returns the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(step)
    raise AssertionError(f"not true within {timeout}s: {getattr(condition, '__name__', '')}")
