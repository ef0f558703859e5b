"""Readings, the latest reading per device and metric, device timers."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from forewarn.config.schema import OfflineMonitor, PeerMonitor
from forewarn.monitors.trends import Average, PeerReading
from forewarn.telemetry.sample import Sample


@dataclass(frozen=True)
class Latest:
    """The newest fresh reading of one device and metric."""

    ts: datetime
    value: float | None = None
    code: str | None = None


class ReadingStore(Protocol):
    """Readings, the latest reading per device and metric, and device timers."""

    def add_readings(self, samples: Sequence[Sample], now: datetime) -> int:
        """Store ``samples`` (a duplicate device/metric/ts is stored once) and move each
        device's last-seen time forward (fresh samples only; ``now`` is when they were
        received). Returns how many were new."""
        ...

    def mark_late(self, samples: Sequence[Sample]) -> None:
        """Flag stored readings that arrived too late to be judged (``late``)."""
        ...

    def record_latest(self, samples: Sequence[Sample]) -> None:
        """Keep the newest of ``samples`` per device and metric as its latest reading,
        unless a newer one is already kept. Stale samples are ignored."""
        ...

    def latest(self, devices: Collection[str], metric: str) -> dict[str, Latest]:
        """The latest reading of ``metric`` for each of ``devices`` that has one."""
        ...

    def history(
        self, device: str, metric: str, since: datetime, until: datetime
    ) -> list[tuple[datetime, float]]:
        """Fresh numeric readings with ``since <= ts <= until``, oldest first."""
        ...

    def averages(
        self, device: str, metric: str, split: datetime, since: datetime, until: datetime
    ) -> tuple[Average, Average]:
        """Mean and count of fresh numeric readings in ``(split, until]`` (recent) and in
        ``(since, split]`` (baseline, with its first reading's time)."""
        ...

    def offline_changes(self, rule: OfflineMonitor, cutoff: datetime) -> list[tuple[str, datetime]]:
        """Devices in ``rule``'s scope whose silence disagrees with its alert: last heard
        (of ``rule.metric``, or of anything; else registered) at or before ``cutoff`` with
        no open alert of ``rule``, or heard after ``cutoff`` with one. A flapping alert whose
        condition is clear does not count as open here. Each with when it was last heard."""
        ...

    def last_heard(self, rule: OfflineMonitor) -> dict[str, datetime]:
        """Every device in ``rule``'s scope with when it was last heard (of ``rule.metric``,
        or of anything; else when it was registered): the offline timers' starts."""
        ...

    def peer_readings(
        self, rule: PeerMonitor, now: datetime, include: Collection[str]
    ) -> dict[str, PeerReading]:
        """Devices in ``rule``'s scope whose latest fresh reading deviates from its cohort
        (and those in ``include``), judged against the cohort without the devices that have
        a firing alert (:func:`forewarn.monitors.cohorts.cohort_readings`)."""
        ...
