"""The stores of :mod:`forewarn.ports` in memory: for backtests and unit tests.

One writer at a time (a replay, a test): a unit of work is the store itself, and a block
that raises is not rolled back. Readings are kept per device and metric in time order
with running sums, so a drift rule's averages and a rate rule's window cost a binary
search, not a scan.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime

from forewarn.config.schema import (
    BaselineMonitor,
    DeviceSettings,
    OfflineMonitor,
    PeerMonitor,
    SiteSettings,
)
from forewarn.monitors.baseline import Band, Bucket
from forewarn.monitors.cohorts import Row, cohort_readings
from forewarn.monitors.rules import selects
from forewarn.monitors.silences import Silence
from forewarn.monitors.trends import Average, PeerReading
from forewarn.ports import (
    AlertEventRecord,
    AlertExists,
    AlertRecord,
    AlertSink,
    Latest,
)
from forewarn.telemetry.sample import Sample


@dataclass
class _Series:
    """Fresh numeric readings of one device and metric, in time order, with running sums."""

    ts: list[datetime] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    sums: list[float] = field(default_factory=lambda: [0.0])
    sorted_to: int = 0
    """``sums`` is valid for the first ``sorted_to`` readings (late ones invalidate it)."""

    def add(self, ts: datetime, value: float) -> None:
        if not self.ts or self.ts[-1] < ts:
            self.ts.append(ts)
            self.values.append(value)
            if self.sorted_to == len(self.ts) - 1:
                self.sums.append(self.sums[-1] + value)
                self.sorted_to += 1
            return
        index = bisect.bisect_left(self.ts, ts)
        if index < len(self.ts) and self.ts[index] == ts:
            return
        self.ts.insert(index, ts)
        self.values.insert(index, value)
        self.sorted_to = min(self.sorted_to, index)
        del self.sums[self.sorted_to + 1 :]

    def _sum(self, lo: int, hi: int) -> float:
        if self.sorted_to < len(self.ts):
            for value in self.values[self.sorted_to :]:
                self.sums.append(self.sums[-1] + value)
            self.sorted_to = len(self.ts)
        return self.sums[hi] - self.sums[lo]

    def between(self, low: datetime, high: datetime, *, closed_low: bool) -> tuple[int, int]:
        lo = (bisect.bisect_left if closed_low else bisect.bisect_right)(self.ts, low)
        return lo, bisect.bisect_right(self.ts, high)

    def average(self, lo: int, hi: int) -> Average:
        n = hi - lo
        if n <= 0:
            return Average(None, 0)
        return Average(self._sum(lo, hi) / n, n, self.ts[lo])


@dataclass
class _Device:
    settings: DeviceSettings
    group: tuple[str, str]
    """Cohort group by site and by region."""
    registered_at: datetime
    last_seen: datetime | None = None


class RecordingSink:
    """An :class:`~forewarn.ports.AlertSink` that keeps what it was told (no tickets)."""

    def __init__(self) -> None:
        self.fired: list[AlertRecord] = []
        self.escalated: list[AlertRecord] = []
        self.resolved: list[AlertRecord] = []
        self.explained: list[AlertRecord] = []

    def alert_fired(self, alert: AlertRecord, now: datetime) -> AlertRecord:
        self.fired.append(alert)
        return alert

    def alert_escalated(self, alert: AlertRecord, now: datetime) -> AlertRecord:
        self.escalated.append(alert)
        return alert

    def alert_resolved(self, alert: AlertRecord, now: datetime) -> None:
        self.resolved.append(alert)

    def work_order(self, device_id: str) -> int | None:
        return None

    def alerts_fired(self, alerts: Sequence[AlertRecord], now: datetime) -> list[AlertRecord]:
        return [self.alert_fired(a, now) for a in alerts]

    def alerts_resolved(self, alerts: Sequence[AlertRecord], now: datetime) -> None:
        for alert in alerts:
            self.alert_resolved(alert, now)

    def alerts_explained(self, alerts: Sequence[AlertRecord], now: datetime) -> None:
        self.explained.extend(alerts)

    def work_orders(self, device_ids: Collection[str]) -> dict[str, int]:
        return {}


class MemoryStore:
    def __init__(
        self,
        devices: Sequence[DeviceSettings] = (),
        sites: Sequence[SiteSettings] = (),
        registered_at: datetime | None = None,
        sink: AlertSink | None = None,
    ) -> None:
        regions = {s.id: s.region for s in sites}
        self._devices = {
            d.id: _Device(d, (d.site, regions.get(d.site, "")), registered_at or datetime.min)
            for d in devices
        }
        self._readings: dict[tuple[str, str, datetime], Sample] = {}
        self._series: dict[tuple[str, str], _Series] = {}
        self._latest: dict[tuple[str, str], Latest] = {}
        self._alerts: dict[int, AlertRecord] = {}
        self._open: dict[str, int] = {}
        self._open_by_subject: dict[str, set[int]] = {}
        self._changes: dict[str, list[datetime]] = {}
        self._resolved: dict[str, datetime] = {}
        self._silences: dict[str, Silence] = {}
        self._by_fingerprint: dict[str, list[int]] = {}
        self._bands: dict[str, dict[str, dict[int, Band]]] = {}
        """rule key -> device -> slot -> band."""
        self._learned: dict[str, datetime] = {}
        self.events: list[AlertEventRecord] = []
        self.late: set[tuple[str, str, datetime]] = set()
        self._sink: AlertSink = sink or RecordingSink()

    # -- Stores / Storage ------------------------------------------------------------

    @property
    def readings(self) -> MemoryStore:
        return self

    @property
    def alerts(self) -> MemoryStore:
        return self

    @property
    def baselines(self) -> MemoryStore:
        return self

    @property
    def sink(self) -> AlertSink:
        return self._sink

    @contextmanager
    def begin(self) -> Iterator[MemoryStore]:
        yield self

    def all_alerts(self) -> list[AlertRecord]:
        """Every alert, open or resolved, in the order they were opened."""
        return [self._alerts[k] for k in sorted(self._alerts)]

    # -- ReadingStore ----------------------------------------------------------------

    def add_readings(self, samples: Sequence[Sample], now: datetime) -> int:
        added = 0
        for s in samples:
            key = (s.device_id, s.metric, s.ts)
            if key in self._readings:
                continue
            self._readings[key] = s
            added += 1
            if s.stale:
                continue
            if s.value is not None:
                series = self._series.get(key[:2])
                if series is None:
                    series = self._series[key[:2]] = _Series()
                series.add(s.ts, s.value)
            device = self._devices.get(s.device_id)
            if device is not None and (device.last_seen is None or device.last_seen < s.ts):
                device.last_seen = s.ts
        return added

    def mark_late(self, samples: Sequence[Sample]) -> None:
        self.late.update((s.device_id, s.metric, s.ts) for s in samples)

    def record_latest(self, samples: Sequence[Sample]) -> None:
        for s in samples:
            if s.stale:
                continue
            key = (s.device_id, s.metric)
            kept = self._latest.get(key)
            if kept is None or kept.ts < s.ts:
                self._latest[key] = Latest(s.ts, s.value, s.code)

    def latest(self, devices: Collection[str], metric: str) -> dict[str, Latest]:
        found = {}
        for device in devices:
            kept = self._latest.get((device, metric))
            if kept is not None:
                found[device] = kept
        return found

    def history(
        self, device: str, metric: str, since: datetime, until: datetime
    ) -> list[tuple[datetime, float]]:
        series = self._series.get((device, metric))
        if series is None:
            return []
        lo, hi = series.between(since, until, closed_low=True)
        return list(zip(series.ts[lo:hi], series.values[lo:hi], strict=True))

    def averages(
        self, device: str, metric: str, split: datetime, since: datetime, until: datetime
    ) -> tuple[Average, Average]:
        series = self._series.get((device, metric))
        if series is None:
            return Average(None, 0), Average(None, 0)
        lo, mid = series.between(since, split, closed_low=False)
        _, hi = series.between(split, until, closed_low=False)
        recent = series.average(mid, hi)
        return Average(recent.mean, recent.count), series.average(lo, mid)

    def last_heard(self, rule: OfflineMonitor) -> dict[str, datetime]:
        heard: dict[str, datetime] = {}
        for device_id, device in self._devices.items():
            if not selects(rule.applies_to, device.settings):
                continue
            if rule.metric is None:
                seen = device.last_seen
            else:
                latest = self._latest.get((device_id, rule.metric))
                seen = None if latest is None else latest.ts
            heard[device_id] = seen or device.registered_at
        return heard

    def offline_changes(self, rule: OfflineMonitor, cutoff: datetime) -> list[tuple[str, datetime]]:
        changes = []
        for device_id, seen in self.last_heard(rule).items():
            alert_id = self._open.get(f"{rule.id}:{device_id}")
            has_open = alert_id is not None and self._alerts[alert_id].condition != "clear"
            if (seen <= cutoff) != has_open:
                changes.append((device_id, seen))
        return changes

    def peer_readings(
        self, rule: PeerMonitor, now: datetime, include: Collection[str]
    ) -> dict[str, PeerReading]:
        rows: list[Row] = []
        for device_id, device in self._devices.items():
            if not selects(rule.applies_to, device.settings):
                continue
            latest = self._latest.get((device_id, rule.metric))
            if latest is None or latest.value is None or latest.ts < now - rule.fresh:
                continue
            group = device.group[0] if rule.cohort == "site" else device.group[1]
            rows.append((device_id, latest.value, latest.ts, device.settings.model, group))
        alarming = {
            a.subject
            for a in self._alerts.values()
            if a.is_open and (a.state == "firing" or a.condition == "firing")
        }
        return cohort_readings(rule, rows, alarming, include)

    # -- AlertStore ------------------------------------------------------------------

    def open_alerts(
        self,
        *,
        subjects: Collection[str] | None = None,
        fingerprints: Collection[str] | None = None,
        rule_ids: Collection[str] | None = None,
        states: Collection[str] | None = None,
    ) -> list[AlertRecord]:
        if fingerprints is not None:
            ids = sorted(self._open[fp] for fp in fingerprints if fp in self._open)
        elif subjects is not None:
            by_subject = self._open_by_subject
            ids = sorted(i for s in subjects if s in by_subject for i in by_subject[s])
        else:
            ids = sorted(self._open.values())
        found = []
        for alert_id in ids:
            alert = self._alerts[alert_id]
            if (
                (subjects is None or alert.subject in subjects)
                and (rule_ids is None or alert.rule_id in rule_ids)
                and (states is None or alert.state in states)
            ):
                found.append(alert)
        return found

    def get(self, alert_id: int) -> AlertRecord | None:
        return self._alerts.get(alert_id)

    def insert(self, alert: AlertRecord) -> AlertRecord:
        if alert.fingerprint in self._open:
            raise AlertExists(alert.fingerprint)
        stored = replace(alert, id=len(self._alerts) + 1)
        self._alerts[stored.id] = stored
        self._by_fingerprint.setdefault(stored.fingerprint, []).append(stored.id)
        if stored.is_open:
            self._open[stored.fingerprint] = stored.id
            self._open_by_subject.setdefault(stored.subject, set()).add(stored.id)
        return stored

    def lock(self, alert_ids: Collection[int]) -> dict[int, AlertRecord]:
        return {i: self._alerts[i] for i in alert_ids if i in self._alerts}

    def insert_many(self, alerts: Sequence[AlertRecord]) -> list[AlertRecord]:
        fingerprints = [a.fingerprint for a in alerts]
        if len(set(fingerprints)) != len(fingerprints) or any(
            fp in self._open for fp in fingerprints
        ):
            raise AlertExists(", ".join(fingerprints))
        return [self.insert(a) for a in alerts]

    def update_many(self, alerts: Sequence[AlertRecord]) -> None:
        for alert in alerts:
            self.update(alert)

    def add_events(self, events: Sequence[AlertEventRecord]) -> None:
        for event in events:
            self.add_event(event)

    def change_times(
        self, fingerprints: Collection[str], since: datetime
    ) -> dict[str, list[datetime]]:
        found = {}
        for fp in fingerprints:
            changes = self._changes.get(fp, [])
            after = changes[bisect.bisect_right(changes, since) :]
            if after:
                found[fp] = after
        return found

    def last_resolved_many(self, fingerprints: Collection[str]) -> dict[str, datetime]:
        return {fp: self._resolved[fp] for fp in fingerprints if fp in self._resolved}

    def update(self, alert: AlertRecord) -> None:
        assert alert.id in self._alerts, f"alert {alert.id} was not read from this store"
        self._alerts[alert.id] = alert
        if alert.is_open:
            self._open[alert.fingerprint] = alert.id
            self._open_by_subject.setdefault(alert.subject, set()).add(alert.id)
        elif self._open.get(alert.fingerprint) == alert.id:
            del self._open[alert.fingerprint]
            self._open_by_subject[alert.subject].discard(alert.id)
            if alert.resolved_at is not None:
                ended = self._resolved.get(alert.fingerprint)
                if ended is None or ended < alert.resolved_at:
                    self._resolved[alert.fingerprint] = alert.resolved_at

    def add_event(self, event: AlertEventRecord) -> None:
        self.events.append(event)
        if event.to_state in ("firing", "flapping") or event.from_state in ("firing", "flapping"):
            fingerprint = self._alerts[event.alert_id].fingerprint
            bisect.insort(self._changes.setdefault(fingerprint, []), event.at)

    def count_changes(self, fingerprint: str, since: datetime) -> int:
        changes = self._changes.get(fingerprint, [])
        return len(changes) - bisect.bisect_right(changes, since)

    def last_resolved(self, fingerprint: str) -> datetime | None:
        return self._resolved.get(fingerprint)

    def alerting_subjects(
        self, rule_ids: Collection[str], since: datetime, until: datetime
    ) -> set[str]:
        return {
            a.subject
            for a in self._alerts.values()
            if a.rule_id in rule_ids
            and a.pending_since < until
            and (a.resolved_at is None or a.resolved_at > since)
        }

    def fired_within(self, fingerprint: str, since: datetime) -> bool:
        for alert_id in self._by_fingerprint.get(fingerprint, ()):
            alert = self._alerts[alert_id]
            if alert.firing_since is not None and (
                alert.resolved_at is None or alert.resolved_at >= since
            ):
                return True
        return False

    def acknowledge(self, alert_id: int, by: str, now: datetime) -> AlertRecord | None:
        alert = self._alerts.get(alert_id)
        if alert is None or not alert.is_open or alert.acknowledged_at is not None:
            return None
        alert = replace(alert, acknowledged_at=now, acknowledged_by=by)
        self._alerts[alert_id] = alert
        return alert

    def add_silence(self, silence: Silence, now: datetime) -> None:
        self._silences[silence.id] = replace(silence, source="api")

    def expire_silence(self, silence_id: str, now: datetime) -> bool:
        silence = self._silences.get(silence_id)
        if silence is None or (silence.ends is not None and silence.ends <= now):
            return False
        self._silences[silence_id] = replace(silence, ends=now)
        return True

    def extend_silence(self, silence_id: str, ends: datetime, now: datetime) -> bool:
        silence = self._silences.get(silence_id)
        if silence is None or silence.ends is None or not now < silence.ends < ends:
            return False
        self._silences[silence_id] = replace(silence, ends=ends)
        return True

    def silences(self, ended_after: datetime) -> list[Silence]:
        return [
            s for _, s in sorted(self._silences.items()) if s.ends is None or s.ends > ended_after
        ]

    # -- BaselineStore ---------------------------------------------------------------

    def hour_buckets(
        self, rule: BaselineMonitor, start: datetime, end: datetime
    ) -> dict[str, Bucket]:
        found: dict[str, Bucket] = {}
        for (device_id, metric), series in self._series.items():
            if metric != rule.metric:
                continue
            device = self._devices.get(device_id)
            if device is None or not selects(rule.applies_to, device.settings):
                continue
            lo = bisect.bisect_left(series.ts, start)
            hi = bisect.bisect_left(series.ts, end)
            if hi > lo:
                values = series.values[lo:hi]
                found[device_id] = Bucket(len(values), sum(values), sum(v * v for v in values))
        return found

    def bands(
        self,
        key: str,
        *,
        devices: Collection[str] | None = None,
        slot: int | None = None,
    ) -> dict[tuple[str, int], Band]:
        kept = self._bands.get(key, {})
        found: dict[tuple[str, int], Band] = {}
        for device in kept if devices is None else devices:
            for at, band in kept.get(device, {}).items():
                if slot is None or at == slot:
                    found[(device, at)] = band
        return found

    def save_bands(self, key: str, bands: Mapping[tuple[str, int], Band], at: datetime) -> None:
        kept = self._bands.setdefault(key, {})
        for (device, slot), band in bands.items():
            kept.setdefault(device, {})[slot] = band

    def learned_until(self, key: str) -> datetime | None:
        return self._learned.get(key)

    def advance_learning(self, key: str, before: datetime | None, after: datetime) -> bool:
        if self._learned.get(key) != before:
            return False
        self._learned[key] = after
        return True
