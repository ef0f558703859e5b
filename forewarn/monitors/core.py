"""Running the monitors over the stores: event-driven on ingest, scheduled for time.

The pure evaluators (:mod:`forewarn.monitors.evaluate`) judge, the pure lifecycle
(:mod:`forewarn.monitors.lifecycle`) decides what the verdict does to the alert; this
module reads and writes through the stores of :mod:`forewarn.ports` and tells the sink
(ticketing) in the same unit of work, so an alert, its ticket and its outbox rows commit
together or not at all. The same code runs live (SQL stores) and in a backtest (memory).

The store is the truth, not a process's memory: each ingest batch reads the open alerts of
its devices, so any worker can resolve an alert another opened, and two workers firing
the same alert at once meet at the store's one-open-alert-per-fingerprint rule (the loser
re-reads the winner's alert and judges again, keeping every other decision of its batch).

Scheduled checks live in :mod:`forewarn.monitors.sweeps`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from forewarn.config.schema import (
    BaselineMonitor,
    DeviceSettings,
    DriftMonitor,
    ForecastMonitor,
    MonitorSettings,
    OfflineMonitor,
    PeerMonitor,
    RateMonitor,
    Settings,
    ThresholdMonitor,
)
from forewarn.monitors import lifecycle
from forewarn.monitors.baseline import Band, evaluate_baseline, slot_of, state_key
from forewarn.monitors.evaluate import (
    OpenAlert,
    Verdict,
    evaluate_fault_code,
    evaluate_offline,
    evaluate_threshold,
)
from forewarn.monitors.forecast import evaluate_forecast, slice_of
from forewarn.monitors.lateness import Reorder
from forewarn.monitors.rules import DeviceRules, compile_rules, fingerprint, rule_version
from forewarn.monitors.silences import Silence, silence_report
from forewarn.monitors.trends import evaluate_drift, evaluate_rate
from forewarn.ports import (
    AlertEventRecord,
    AlertExists,
    AlertRecord,
    AlertStore,
    Storage,
    Stores,
)
from forewarn.telemetry.sample import STATUS_METRIC, Sample

log = logging.getLogger(__name__)

View = dict[str, AlertRecord]
"""fingerprint -> open alert, as last read; absent: no open alert."""
Judge = Callable[[OpenAlert | None], Verdict]


class _Moved(Exception):
    """Another worker changed the alert between our read and our write: read it again."""


class AlertCore:
    """All configured device monitors, compiled per device, over one storage."""

    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.storage = storage
        self.alerting = settings.alerting
        self.rules: dict[str, MonitorSettings] = {m.id: m for m in settings.monitors}
        self.rules_in_order = settings.monitors
        self.versions = {m.id: rule_version(m) for m in settings.monitors}
        self.by_device: dict[str, DeviceRules] = compile_rules(settings.monitors, settings.devices)
        self.devices = {d.id: d for d in settings.devices}
        self.fleet = settings.devices
        self.site_devices: dict[str, list[DeviceSettings]] = {}
        for device in settings.devices:
            self.site_devices.setdefault(device.site, []).append(device)
        self.site_zones = {s.id: s.timezone for s in settings.sites}
        self.site_regions = {s.id: s.region for s in settings.sites}
        self.sources = {i.source_rule for i in settings.alerting.inhibit}
        # Inhibition sources first, so a gateway's alarm exists before its devices' do.
        self.offline_rules = sorted(
            (m for m in settings.monitors if isinstance(m, OfflineMonitor)),
            key=lambda m: m.id not in self.sources,
        )
        self.timed_rules = [
            m
            for m in settings.monitors
            if isinstance(
                m,
                ThresholdMonitor | RateMonitor | DriftMonitor | BaselineMonitor | ForecastMonitor,
            )
        ]
        self.baseline_rules = [m for m in settings.monitors if isinstance(m, BaselineMonitor)]
        self.peer_rules = [m for m in settings.monitors if isinstance(m, PeerMonitor)]
        self._rates = any(isinstance(m, RateMonitor | ForecastMonitor) for m in settings.monitors)
        self._forecasts = any(isinstance(m, ForecastMonitor) for m in settings.monitors)
        self.config_silences = [Silence.from_settings(s) for s in settings.alerting.silences]
        self.writes = 0
        """How many alert writes this core made (a replay's clock watches it)."""
        self.lateness = settings.alerting.lateness
        self._reorder = Reorder(self.lateness)
        self.cause: Mapping[str, Any] | None = None
        """Added to the evidence of every change this core writes while set (a rule
        change re-judging open alerts says so on each transition it causes)."""

    def carry_over(self, previous: AlertCore) -> None:
        """Take over what ``previous`` holds in memory when a new rule version replaces it:
        the samples waiting out the lateness bound, and the write count."""
        self._reorder = previous._reorder
        self.writes = previous.writes

    def load(self) -> None:
        """Check the configured silences at start-up: one that matches nothing is a typo."""
        epoch = datetime.fromisoformat("2000-01-01T00:00:00+00:00")
        for status in silence_report(
            self.config_silences,
            self.fleet,
            self.site_zones,
            epoch,
            timedelta(0),
            self.site_regions,
        ):
            if status.matches_nothing:
                log.warning("silence %s matches no device", status.silence.id)

    # -- event-driven ------------------------------------------------------------------

    def on_samples(self, stores: Stores, samples: Sequence[Sample], now: datetime) -> None:
        """Evaluate freshly stored samples, in the unit of work that stored them.

        Stale samples (retained, replayed, too old) are stored history: they never fire
        or clear a rule, and do not move the latest readings either. With
        ``alerting.lateness`` the samples wait in event-time order until the device's
        newest reading is that far past them (see :meth:`release_held`); one older than
        what was already judged is marked late and judged never.
        """
        by_device = self.by_device
        fresh = [s for s in samples if not s.stale and s.device_id in by_device]
        if fresh and self.lateness > timedelta(0):
            fresh = self._hold(stores, fresh)
        if fresh:
            self._judge(stores, fresh, now)

    def _hold(self, stores: Stores, fresh: list[Sample]) -> list[Sample]:
        released, late = self._reorder.arrive(fresh)
        if late:
            stores.readings.mark_late(late)
            log.info(
                "%d reading(s) arrived beyond the lateness bound: stored, not judged", len(late)
            )
        return released

    def release_held(self, stores: Stores, now: datetime) -> None:
        """Judge the held samples the clock has passed by the lateness bound (a device that
        fell silent has no newer reading to release them)."""
        released = self._reorder.due(now)
        if released:
            self._judge(stores, released, now)

    def next_release(self) -> datetime | None:
        """When the clock releases the first held sample."""
        return self._reorder.next_release()

    def _judge(self, stores: Stores, fresh: list[Sample], now: datetime) -> None:
        by_device = self.by_device
        if len(fresh) > 1:
            fresh.sort(key=lambda s: s.ts)
        due = self._forecast_due(stores, fresh) if self._forecasts else set()
        stores.readings.record_latest(
            [s for s in fresh if s.metric in by_device[s.device_id].tracked]
        )
        view = self.view(stores, subjects={s.device_id for s in fresh})
        histories = self._histories(stores, fresh, due) if self._rates else {}
        bands = self._bands(stores, fresh) if self.baseline_rules else {}
        for sample in fresh:
            self._judge_sample(stores, sample, view, histories, bands, due, now)

    def _judge_sample(
        self,
        stores: Stores,
        sample: Sample,
        view: View,
        histories: dict[tuple[str, str], list[tuple[datetime, float]]],
        bands: dict[str, dict[tuple[str, int], Band]],
        due: set[Sample],
        now: datetime,
    ) -> None:
        rules = self.by_device[sample.device_id]
        device = sample.device_id
        if sample.metric == STATUS_METRIC:
            for fault_rule in rules.fault_codes:
                judge: Judge = partial(evaluate_fault_code, fault_rule, sample)
                self.decide(stores, fault_rule, device, view, now, judge)
        else:
            for rule, levels in rules.thresholds.get(sample.metric, ()):
                judge = partial(evaluate_threshold, rule, levels, sample)
                self.decide(stores, rule, device, view, now, judge)
            for rate_rule in rules.rates.get(sample.metric, ()):
                history = histories.get((device, sample.metric), [])
                points = [p for p in history if p[0] <= sample.ts]
                judge = partial(evaluate_rate, rate_rule, points, sample)
                self.decide(stores, rate_rule, device, view, now, judge)
            for drift_rule in rules.drifts.get(sample.metric, ()):
                split = sample.ts - drift_rule.window
                recent, baseline = stores.readings.averages(
                    device, drift_rule.metric, split, split - drift_rule.baseline, sample.ts
                )
                judge = partial(evaluate_drift, drift_rule, recent, baseline, sample)
                self.decide(stores, drift_rule, device, view, now, judge)
            for baseline_rule in rules.baselines.get(sample.metric, ()):
                band = bands.get(baseline_rule.id, {}).get(
                    (device, slot_of(baseline_rule, sample.ts))
                )
                judge = partial(evaluate_baseline, baseline_rule, band, sample)
                self.decide(stores, baseline_rule, device, view, now, judge)
            for forecast_rule in rules.forecasts.get(sample.metric, ()) if sample in due else ():
                history = histories.get((device, sample.metric), [])
                points = [p for p in history if p[0] <= sample.ts]
                judge = partial(evaluate_forecast, forecast_rule, points, sample)
                self.decide(stores, forecast_rule, device, view, now, judge)
        for offline_rule in rules.offline:
            if offline_rule.metric is not None and offline_rule.metric != sample.metric:
                continue
            if fingerprint(offline_rule.id, device) in view:
                judge = partial(evaluate_offline, offline_rule, sample.ts, now=now)
                self.decide(stores, offline_rule, device, view, now, judge)

    def _forecast_due(self, stores: Stores, fresh: Sequence[Sample]) -> set[Sample]:
        """The samples at which the forecast rules judge: the first reading of a device in
        each slice of the window (:data:`~forewarn.monitors.forecast.SLICES`), found from
        the latest stored reading before this batch. A trend over hours does not change
        with each reading, and the fit is the costly part of ingest for these rules."""
        wanted = [s for s in fresh if self.by_device[s.device_id].forecasts.get(s.metric)]
        previous: dict[tuple[str, str], datetime] = {}
        for metric in {s.metric for s in wanted}:
            devices = {s.device_id for s in wanted if s.metric == metric}
            for device, latest in stores.readings.latest(devices, metric).items():
                previous[(device, metric)] = latest.ts
        due = set()
        for sample in wanted:  # in time order
            key = (sample.device_id, sample.metric)
            size = min(r.window for r in self.by_device[sample.device_id].forecasts[sample.metric])
            before = previous.get(key)
            if before is None or slice_of(before, size) < slice_of(sample.ts, size):
                due.add(sample)
            if before is None or before < sample.ts:
                previous[key] = sample.ts
        return due

    def _histories(
        self, stores: Stores, fresh: Sequence[Sample], due: set[Sample]
    ) -> dict[tuple[str, str], list[tuple[datetime, float]]]:
        """Readings in the rate and forecast rules' windows, one read per device and
        metric."""
        spans: dict[tuple[str, str], tuple[datetime, datetime, timedelta]] = {}
        for sample in fresh:
            compiled = self.by_device[sample.device_id]
            windows = [r.window for r in compiled.rates.get(sample.metric, ())]
            if sample in due:
                windows += [r.window for r in compiled.forecasts.get(sample.metric, ())]
            if not windows:
                continue
            window = max(windows)
            key = (sample.device_id, sample.metric)
            low, high, _ = spans.get(key, (sample.ts, sample.ts, window))
            spans[key] = (min(low, sample.ts), max(high, sample.ts), window)
        return {
            (device, metric): stores.readings.history(device, metric, low - window, high)
            for (device, metric), (low, high, window) in spans.items()
        }

    def _bands(
        self, stores: Stores, fresh: Sequence[Sample]
    ) -> dict[str, dict[tuple[str, int], Band]]:
        """The learned bands of the batch's devices, one read per baseline rule."""
        found: dict[str, dict[tuple[str, int], Band]] = {}
        for rule in self.baseline_rules:
            devices = {
                s.device_id
                for s in fresh
                if s.metric == rule.metric
                and rule in self.by_device[s.device_id].baselines.get(rule.metric, ())
            }
            if devices:
                found[rule.id] = stores.baselines.bands(state_key(rule), devices=devices)
        return found

    # -- deciding ----------------------------------------------------------------------

    def view(
        self,
        stores: Stores,
        *,
        subjects: Collection[str] | None = None,
        fingerprints: Collection[str] | None = None,
    ) -> View:
        """The open alerts of these subjects (or fingerprints), by fingerprint."""
        if subjects is not None:
            found = stores.alerts.open_alerts(subjects=subjects)
        else:
            found = stores.alerts.open_alerts(fingerprints=fingerprints or ())
        return {a.fingerprint: a for a in found if a.rule_id in self.rules}

    def decide(
        self,
        stores: Stores,
        rule: MonitorSettings,
        subject: str,
        view: View,
        now: datetime,
        judge: Judge,
    ) -> int:
        """Judge the rule against the open alert and apply the verdict; 1 if it changed.

        If another worker moved the alert meanwhile (or won the race to open it), read it
        again and judge once more against what it did.
        """
        fp = fingerprint(rule.id, subject)
        for attempt in (1, 2):
            current = view.get(fp)
            verdict = judge(None if current is None else lifecycle.snapshot(current))
            if verdict.action == "none":
                return 0
            try:
                return self._apply(stores, rule, subject, verdict, now, view, current, attempt)
            except _Moved:
                view.pop(fp, None)
                view.update(self.view(stores, fingerprints=[fp]))
        return 0

    def _apply(
        self,
        stores: Stores,
        rule: MonitorSettings,
        subject: str,
        verdict: Verdict,
        now: datetime,
        view: View,
        current: AlertRecord | None,
        attempt: int,
    ) -> int:
        assert verdict.at is not None
        fp = fingerprint(rule.id, subject)
        if current is not None:
            alert = stores.alerts.get(current.id)
            if (
                alert is None
                or not alert.is_open
                or lifecycle.snapshot(alert) != lifecycle.snapshot(current)
            ):
                if attempt == 1:
                    raise _Moved
                return 0
        else:
            if verdict.action not in ("pend", "fire"):
                return 0
            ended = stores.alerts.last_resolved(fp)
            if ended is not None and verdict.at <= ended:
                return 0  # a late or redelivered sample from an episode already over
            opened = lifecycle.new_alert(rule.id, self.versions[rule.id], subject, verdict)
            try:
                alert = stores.alerts.insert(opened)
            except AlertExists as exc:
                raise _Moved from exc
        flapping = False
        if lifecycle.counts_for_flapping(alert, verdict):
            window = self.alerting.flapping.window
            recent = stores.alerts.count_changes(fp, verdict.at - window)
            flapping = lifecycle.flaps(recent, self.alerting.flapping)
        transition = lifecycle.apply(
            alert,
            verdict,
            now,
            version=self.versions[rule.id],
            new=current is None,
            flapping=flapping,
        )
        alert = self.write(stores, transition, now)
        if alert.is_open:
            view[fp] = alert
        else:
            view.pop(fp, None)
        if transition.changes:
            log.info(
                "alert %s %s -> %s: %s",
                fp,
                transition.changes[0].from_state or "new",
                alert.state,
                verdict.summary,
            )
        return int(transition.changed)

    def write(self, stores: Stores, transition: lifecycle.Transition, now: datetime) -> AlertRecord:
        """Store a transition and tell ticketing what it must hear."""
        self.writes += 1
        if self.cause and transition.changes:
            cause = dict(self.cause)
            transition = replace(
                transition,
                changes=tuple(
                    replace(c, evidence={**c.evidence, "cause": cause}) for c in transition.changes
                ),
            )
        alert = record(stores.alerts, transition)
        rule = self.rules.get(alert.rule_id)
        if rule is None or not rule.notify:
            return alert
        if transition.effect == "announce" and alert.notified_at is None:
            return self.announce(stores, alert, now)
        if transition.effect == "retire" and alert.notified_at is not None:
            stores.sink.alert_resolved(alert, now)
        if transition.effect == "escalate" and alert.notified_at is not None:
            # Its new severity raises the ticket's priority; the ticket still holds one alert.
            alert = stores.sink.alert_escalated(alert, now)
            stores.alerts.update(alert)
        return alert

    def announce(self, stores: Stores, alert: AlertRecord, now: datetime) -> AlertRecord:
        """Hand a firing alert to ticketing unless a silence, an inhibition or flapping
        holds it; the reason is recorded either way."""
        if alert.state == "flapping":
            alert = replace(alert, suppressed_by="flapping")
            stores.alerts.update(alert)
            return alert
        self.writes += 1
        reason = self.suppression(stores, alert, now)
        alert = replace(alert, suppressed_by=reason)
        stores.alerts.update(alert)
        if lifecycle.held(reason):
            log.info("alert %s held: %s", alert.fingerprint, reason)
            if reason is not None and reason.startswith("inhibited:"):
                # Its cause's ticket lists it (one incident per site).
                stores.sink.alerts_explained([alert], now)
            return alert
        alert = replace(stores.sink.alert_fired(alert, now), notified_at=now)
        stores.alerts.update(alert)
        return alert

    def suppression(self, stores: Stores, alert: AlertRecord, now: datetime) -> str | None:
        return self.reason_held(
            stores,
            alert,
            now,
            silences=self.silences(stores, now),
            inhibitor=self.inhibitors(stores, [alert]).get(alert.id),
            work_order=stores.sink.work_order(alert.subject),
        )

    def reason_held(
        self,
        stores: Stores,
        alert: AlertRecord,
        now: datetime,
        *,
        silences: Sequence[Silence],
        inhibitor: str | None,
        work_order: int | None,
    ) -> str | None:
        """Why a firing alert is held (or attached to a work order), given what was read
        for it: the silences, its firing inhibition source and its device's work order."""
        device = self.devices.get(alert.subject)
        if device is None:
            return None
        reason = lifecycle.suppression(
            device,
            alert.rule_id,
            silences,
            self.site_zones.get(device.site, "UTC"),
            now,
            inhibitor=inhibitor,
            work_order=work_order,
        )
        if lifecycle.held(reason):
            return reason
        rule = self.rules.get(alert.rule_id)
        requires = rule.requires if rule is not None else None
        if requires is not None and not stores.alerts.fired_within(
            fingerprint(requires.rule, alert.subject), now - requires.within
        ):
            # Held, not dropped: the lifecycle sweep asks again until the rule agrees.
            return f"{lifecycle.AWAITING}{requires.rule}"
        return reason

    def inhibitors(self, stores: Stores, alerts: Sequence[AlertRecord]) -> dict[int, str]:
        """For each alert held by a firing inhibition source, that source's fingerprint
        (by alert id); the sources of every alert are read in one query."""
        wanted: dict[int, list[str]] = {}
        for alert in alerts:
            device = self.devices.get(alert.subject)
            if device is None:
                continue
            for inhibit in self.alerting.inhibit:
                if inhibit.target_rules and alert.rule_id not in inhibit.target_rules:
                    continue
                if inhibit.scope == "parent":
                    sources = [device.parent] if device.parent else []
                else:
                    sources = [d.id for d in self.site_devices.get(device.site, ())]
                wanted.setdefault(alert.id, []).extend(
                    fingerprint(inhibit.source_rule, s)
                    for s in sources
                    if s != device.id
                    and s in self.devices
                    and (not inhibit.source_kinds or self.devices[s].kind in inhibit.source_kinds)
                )
        every = {fp for fps in wanted.values() for fp in fps}
        if not every:
            return {}
        firing = {
            found.fingerprint
            for found in stores.alerts.open_alerts(fingerprints=every)
            if found.state == "firing" or found.condition == "firing"
        }
        held: dict[int, str] = {}
        for alert_id, fps in wanted.items():
            source = next((fp for fp in fps if fp in firing), None)
            if source is not None:
                held[alert_id] = source
        return held

    def is_source(self, rule: MonitorSettings, device_id: str) -> bool:
        device = self.devices.get(device_id)
        if device is None:
            return False
        return any(
            i.source_rule == rule.id and (not i.source_kinds or device.kind in i.source_kinds)
            for i in self.alerting.inhibit
        )

    def silences(self, stores: Stores, now: datetime) -> list[Silence]:
        """The silences in the file and those created through the API that have not ended
        a day ago (naive local end times can be up to a day off UTC)."""
        found = [*self.config_silences, *stores.alerts.silences(now - timedelta(days=1))]
        return [s.in_areas(self.site_regions) for s in found]


def record(alerts: AlertStore, transition: lifecycle.Transition) -> AlertRecord:
    """Store a transition: the alert as it now is and its history rows (an acknowledgement
    writes the alert with its acknowledgement again, harmlessly)."""
    alert = transition.alert
    alerts.update(alert)
    for change in transition.changes:
        alerts.add_event(
            AlertEventRecord(
                alert.id,
                change.at,
                change.from_state,
                change.to_state,
                alert.rule_version,
                change.evidence,
            )
        )
    return alert
