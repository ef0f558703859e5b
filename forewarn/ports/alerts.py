"""Alerts, their change events and API silences; ticketing as the monitors see it."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from forewarn.monitors.silences import Silence


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


class AlertExists(Exception):
    """Another writer opened an alert with this fingerprint first: read it and judge again."""


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

    def lock(self, alert_ids: Collection[int]) -> dict[int, AlertRecord]:
        """:meth:`get` for many alerts at once, by id (unknown ids are left out)."""
        ...

    def insert_many(self, alerts: Sequence[AlertRecord]) -> list[AlertRecord]:
        """:meth:`insert` for many alerts, all or nothing: returns them with their ids in
        the same order, or raises :class:`AlertExists` having stored none of them."""
        ...

    def update_many(self, alerts: Sequence[AlertRecord]) -> None:
        """:meth:`update` for many alerts."""
        ...

    def add_events(self, events: Sequence[AlertEventRecord]) -> None:
        """:meth:`add_event` for many events."""
        ...

    def change_times(
        self, fingerprints: Collection[str], since: datetime
    ) -> dict[str, list[datetime]]:
        """For each fingerprint, the times of the changes :meth:`count_changes` counts after
        ``since`` (fingerprints without one are left out)."""
        ...

    def last_resolved_many(self, fingerprints: Collection[str]) -> dict[str, datetime]:
        """:meth:`last_resolved` for many fingerprints (those never resolved are left out)."""
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

    def alerting_subjects(
        self, rule_ids: Collection[str], since: datetime, until: datetime
    ) -> set[str]:
        """Subjects with an alert of one of ``rule_ids`` open at some time in
        ``[since, until)`` (pending, firing or flapping; resolved ones by their span)."""
        ...

    def fired_within(self, fingerprint: str, since: datetime) -> bool:
        """An alert of ``fingerprint`` was firing at some time at or after ``since`` (it
        is firing now, or resolved after ``since`` having fired)."""
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
    ``alert_escalated`` when an announced alert's severity rises (a worse fault code: the
    same alert, counted once, raises its ticket) and returns it likewise;
    ``alert_resolved`` only for an alert that was announced.
    """

    def alert_fired(self, alert: AlertRecord, now: datetime) -> AlertRecord: ...

    def alert_escalated(self, alert: AlertRecord, now: datetime) -> AlertRecord: ...

    def alert_resolved(self, alert: AlertRecord, now: datetime) -> None: ...

    def work_order(self, device_id: str) -> int | None:
        """The id of the ticket being worked on this device, if any."""
        ...

    def alerts_fired(self, alerts: Sequence[AlertRecord], now: datetime) -> list[AlertRecord]:
        """:meth:`alert_fired` for many alerts announced together (a sweep's storm), in one
        pass: returns them in the same order as ticketing left them."""
        ...

    def alerts_resolved(self, alerts: Sequence[AlertRecord], now: datetime) -> None:
        """:meth:`alert_resolved` for many alerts."""
        ...

    def alerts_explained(self, alerts: Sequence[AlertRecord], now: datetime) -> None:
        """Alerts held because a firing source explains them (``inhibited:<fingerprint>``):
        ticketing lists them on the source's ticket, the site's incident, and tells
        nobody about them."""
        ...

    def work_orders(self, device_ids: Collection[str]) -> dict[str, int]:
        """:meth:`work_order` for many devices (those without one are left out)."""
        ...
