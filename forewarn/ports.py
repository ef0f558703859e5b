"""What the domain core asks of storage: every interface documented once, here.

The monitors (and ticketing) depend on these protocols, never on SQLAlchemy. Each store is
bound to one transaction: what a method writes commits or rolls back with the caller's
unit of work. Implementations live in :mod:`forewarn.store` (SQL, one module per
aggregate: ``store/readings.py``, ``store/alerts.py``; SQLite and PostgreSQL side by side)
and :mod:`forewarn.store.memory` (backtests and unit tests); they carry no docstrings of
their own. ``tests/store/contract/`` runs one suite against all of them.

Values crossing these interfaces are plain frozen dataclasses; the ORM rows stay in
``store/``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from forewarn.config.schema import OfflineMonitor, PeerMonitor
from forewarn.monitors.silences import Silence
from forewarn.monitors.trends import Average, PeerReading
from forewarn.telemetry.sample import Sample

# -- values ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertRecord:
    """One alert as stored: an episode of one rule on one subject (device or order).

    ``id`` is 0 until the store has inserted it. ``state`` is ``pending``, ``firing``,
    ``flapping`` or ``resolved``; an alert is open until it is resolved.
    """

    fingerprint: str
    rule_id: str
    rule_version: str
    subject: str
    state: str
    severity: str
    summary: str
    pending_since: datetime
    id: int = 0
    suggested_fix: str = ""
    firing_since: datetime | None = None
    resolved_at: datetime | None = None
    last_value: float | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    ticket_id: int | None = None
    last_ts: datetime | None = None
    """Event time of the last reading that moved this alert; older readings are ignored."""
    breaches: int = 0
    """Consecutive readings beyond the level so far (N-in-a-row rules)."""
    clearing_since: datetime | None = None
    """Since when the value has been at the clear level (rules with ``clear_for``)."""
    condition: str | None = None
    """While ``flapping``: what the rule currently says (pending, firing or clear)."""
    condition_since: datetime | None = None
    """While ``flapping``: when ``condition`` last changed (it settles from here)."""
    notified_at: datetime | None = None
    """When ticketing was told it fired; None while silenced, inhibited or flapping."""
    suppressed_by: str | None = None
    """Why it was not announced: ``silence:<id>``, ``inhibited:<fingerprint>``,
    ``flapping`` or ``work_order:<ticket>`` (attached, nobody notified)."""
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None

    @property
    def is_open(self) -> bool:
        return self.state != "resolved"


@dataclass(frozen=True)
class AlertEventRecord:
    """One change of an alert (or of a flapping alert's condition), with its evidence."""

    alert_id: int
    at: datetime
    from_state: str | None
    to_state: str
    rule_version: str
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Latest:
    """The newest fresh reading of one device and metric."""

    ts: datetime
    value: float | None = None
    code: str | None = None


# -- errors ------------------------------------------------------------------------------


class AlertExists(Exception):
    """Another writer opened an alert with this fingerprint first: read it and judge again."""


# -- stores ------------------------------------------------------------------------------


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


class AlertStore(Protocol):
    """Alerts, their change events, and silences created through the API.

    At most one alert per fingerprint is open at a time. Methods that return alerts for
    a decision lock them (``FOR UPDATE`` on PostgreSQL) until the transaction ends.
    """

    def open_alerts(
        self,
        *,
        subjects: Collection[str] | None = None,
        fingerprints: Collection[str] | None = None,
        rule_ids: Collection[str] | None = None,
        states: Collection[str] | None = None,
    ) -> list[AlertRecord]:
        """Open alerts matching every given filter, ordered by id."""
        ...

    def get(self, alert_id: int) -> AlertRecord | None:
        """The alert, read afresh and locked; None if there is none."""
        ...

    def insert(self, alert: AlertRecord) -> AlertRecord:
        """Store a new open alert and return it with its id. Raises :class:`AlertExists`
        (leaving the transaction usable) if its fingerprint is already open."""
        ...

    def update(self, alert: AlertRecord) -> None:
        """Write every field of an alert read from this store."""
        ...

    def add_event(self, event: AlertEventRecord) -> None:
        """Record one change of an alert."""
        ...

    def count_changes(self, fingerprint: str, since: datetime) -> int:
        """Changes to or from firing or flapping of ``fingerprint``'s alerts after ``since``."""
        ...

    def last_resolved(self, fingerprint: str) -> datetime | None:
        """When the latest resolved episode of ``fingerprint`` ended."""
        ...

    def acknowledge(self, alert_id: int, by: str, now: datetime) -> AlertRecord | None:
        """Mark an open, unacknowledged alert acknowledged (compare-and-set); the updated
        alert, or None if it was closed, acknowledged already or unknown."""
        ...

    def add_silence(self, silence: Silence, now: datetime) -> None:
        """Keep a silence created through the API."""
        ...

    def expire_silence(self, silence_id: str, now: datetime) -> bool:
        """End a stored silence at ``now`` if it has not ended (compare-and-set)."""
        ...

    def extend_silence(self, silence_id: str, ends: datetime, now: datetime) -> bool:
        """Move a running stored silence's end later to ``ends`` (compare-and-set: only
        one that has not ended and ends before ``ends``); the customers of a maintenance
        window are then told it was extended."""
        ...

    def silences(self, ended_after: datetime) -> list[Silence]:
        """Stored silences with no end or an end after ``ended_after``."""
        ...


class AlertSink(Protocol):
    """Ticketing as the monitors see it, inside the alert's transaction.

    ``alert_fired`` is called once per alert when it is announced (not while silenced,
    inhibited or flapping) and returns the alert as ticketing left it (its ticket id);
    ``alert_resolved`` only for an alert that was announced.
    """

    def alert_fired(self, alert: AlertRecord, now: datetime) -> AlertRecord: ...

    def alert_resolved(self, alert: AlertRecord, now: datetime) -> None: ...

    def work_order(self, device_id: str) -> int | None:
        """The id of the ticket being worked on this device, if any."""
        ...


class Stores(Protocol):
    """One unit of work: the stores the monitors use, bound to one transaction."""

    @property
    def readings(self) -> ReadingStore: ...

    @property
    def alerts(self) -> AlertStore: ...

    @property
    def sink(self) -> AlertSink: ...


class Storage(Protocol):
    """Where units of work come from."""

    def begin(self) -> AbstractContextManager[Stores]:
        """A new unit of work: committed when the block ends, rolled back if it raises."""
        ...
