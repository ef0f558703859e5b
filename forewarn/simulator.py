"""A simulated device fleet publishing realistic telemetry over MQTT, with injected faults.

Used by ``forewarn demo``, ``forewarn simulate`` and the benchmarks. The readings follow
the forewarn payload convention (``devices/<id>/telemetry``, JSON with ``ts``, metrics and
a ``fault`` status code), so the default payload mapping ingests them unchanged.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from forewarn.config.durations import parse_duration
from forewarn.config.schema import DeviceSettings

FaultKind = Literal["overheat", "code", "silence", "garbage"]
_FAULT = re.compile(
    r"^(?P<device>[^:@]+):(?P<kind>overheat|silence|garbage|code=(?P<code>\w+))"
    r"(?:@(?P<at>[\dsmh.]+))?$"
)


@dataclass(frozen=True)
class Fault:
    """Something going wrong with one device, ``after`` the simulation started."""

    device_id: str
    kind: FaultKind
    after: timedelta = timedelta(0)
    code: str | None = None

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``inv-101:overheat@10s``, ``inv-301:code=E021@5s``, ``bat-202:silence@3s``."""
        match = _FAULT.match(text.strip())
        if not match:
            raise ValueError(
                f"{text!r} is not a fault (e.g. inv-101:overheat@10s, inv-301:code=E021@5s, "
                "bat-202:silence@3s)"
            )
        code = match.group("code")
        kind: FaultKind = "code" if code else match.group("kind")  # type: ignore[assignment]
        after = parse_duration(match.group("at")) if match.group("at") else timedelta(0)
        return cls(match.group("device"), kind, after, code)


class Fleet:
    """Computes each device's readings at a given time; pure apart from its seeded noise."""

    def __init__(
        self, devices: Sequence[DeviceSettings], faults: Sequence[Fault] = (), seed: int = 7
    ) -> None:
        self.devices = list(devices)
        self.faults = {f.device_id: f for f in faults}
        self._rng = random.Random(seed)  # noqa: S311 - simulation noise
        self._garbled: set[str] = set()

    def messages(self, now: datetime, elapsed: timedelta) -> list[tuple[str, bytes]]:
        """(topic, payload) for every device that reports at ``now``."""
        out = []
        for device in self.devices:
            fault = self.faults.get(device.id)
            active = fault is not None and elapsed >= fault.after
            if active and fault is not None and fault.kind == "silence":
                continue
            topic = f"devices/{device.id}/telemetry"
            if active and fault is not None and fault.kind == "garbage":
                if device.id not in self._garbled:
                    # One truncated, mistyped message: it must be quarantined, not crash.
                    self._garbled.add(device.id)
                    out.append((topic, b'{"ts": "yesterday-ish", "temperature": "hot"'))
                    continue
                fault = None
            body = self._reading(device, now, fault if active else None, elapsed)
            out.append((topic, orjson.dumps(body)))
        return out

    def _reading(
        self, device: DeviceSettings, now: datetime, fault: Fault | None, elapsed: timedelta
    ) -> dict[str, object]:
        noise = self._rng.gauss
        hour = now.hour + now.minute / 60
        sun = max(0.0, math.sin(math.pi * (hour - 6) / 12))  # a clear day, 06:00-18:00
        body: dict[str, object] = {"ts": now.isoformat()}
        if device.kind == "inverter":
            capacity = 8000.0 if "8K" in device.model else 5000.0
            temperature = 38 + 14 * sun + noise(0, 0.8)
            if fault is not None and fault.kind == "overheat":
                ramp = (elapsed - fault.after).total_seconds()
                temperature = min(92.0, 60 + ramp * 4) + noise(0, 0.5)
            body["power_w"] = round(max(0.0, capacity * sun * (0.92 + noise(0, 0.02))), 1)
            body["temperature"] = round(temperature, 2)
            body["fault"] = fault.code if fault is not None and fault.kind == "code" else "OK"
        elif device.kind == "battery":
            body["soc"] = round(min(100.0, 55 + 35 * sun + noise(0, 0.5)), 1)
            body["temperature"] = round(24 + 3 * sun + noise(0, 0.4), 2)
        else:
            body["temperature"] = round(30 + noise(0, 1), 2)
        return body


class Publisher:
    """Publishes a :class:`Fleet` to a broker at a fixed interval (QoS 1) until stopped."""

    def __init__(
        self,
        fleet: Fleet,
        host: str,
        port: int,
        interval: timedelta,
        *,
        clock: Callable[[], datetime],
        client_id: str = "forewarn-simulator",
    ) -> None:
        self._fleet = fleet
        self._interval = interval.total_seconds()
        self._clock = clock
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self._host, self._port = host, port
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = 0

    def start(self) -> None:
        self._client.connect(self._host, self._port, keepalive=30)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = self._clock()
        while not self._stop.is_set():
            now = self._clock()
            for topic, payload in self._fleet.messages(now, now - started):
                self._client.publish(topic, payload, qos=1)
                self.published += 1
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        deadline = time.monotonic() + 5
        while self._client.want_write() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._client.disconnect()
        self._client.loop_stop()
