"""The scheduled checks (leader only), each rule in its own unit of work.

Every check reads only what can change: silent devices from the store's set-based query,
open alerts with their device's latest reading, fleet-peer outliers, flapping alerts that
settled and firing alerts still held. Never a loop over every device.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from forewarn.config.schema import (
    BaselineMonitor,
    DriftMonitor,
    ForecastMonitor,
    RateMonitor,
    ThresholdMonitor,
)
from forewarn.monitors import lifecycle
from forewarn.monitors.batch import decide_many
from forewarn.monitors.core import AlertCore, Judge, View
from forewarn.monitors.evaluate import (
    NOTHING,
    Action,
    OpenAlert,
    Verdict,
    evaluate_due,
    evaluate_offline,
    evaluate_threshold,
)
from forewarn.monitors.learning import sweep_baselines
from forewarn.monitors.rules import fingerprint
from forewarn.monitors.trends import evaluate_peer
from forewarn.ports import Latest, Stores
from forewarn.telemetry.sample import Sample


@dataclass(frozen=True)
class SweepReport:
    """How many alerts one scheduled sweep changed, by check."""

    offline: int = 0
    pending: int = 0
    peers: int = 0
    lifecycle: int = 0
    learned: int = 0
    """Hours the learned-baseline rules learned (not alert changes)."""

    @property
    def total(self) -> int:
        return self.offline + self.pending + self.peers + self.lifecycle


def sweep(core: AlertCore, now: datetime, *, peers: bool = True) -> SweepReport:
    """Every scheduled check, on the clock less ``alerting.lateness``.

    ``peers=False`` leaves out the fleet-peer comparison, which the service runs on its
    own, slower interval (``scheduler.peer_check_interval``): it reads every device's
    latest reading, where the other checks read only timers and open alerts.
    """
    if core.lateness > timedelta(0):
        with core.storage.begin() as stores:
            core.release_held(stores, now)
        # Timers run on the event-time watermark too: a reading still within the bound
        # may yet cancel a pending alert or show a device was not silent.
        now -= core.lateness
    return SweepReport(
        learned=sweep_baselines(core, now),
        offline=sweep_offline(core, now),
        pending=sweep_pending(core, now),
        peers=sweep_peers(core, now) if peers else 0,
        lifecycle=sweep_lifecycle(core, now),
    )


def sweep_offline(core: AlertCore, now: datetime) -> int:
    """Fire offline (and metric-absence) alerts for silent devices AT their timeout and
    resolve those reporting again. Returns the number of alerts changed."""
    changed = 0
    for rule in core.offline_rules:
        with core.storage.begin() as stores:
            # Same boundary as evaluate_offline: silent from last_seen + after <= now on.
            rows = stores.readings.offline_changes(rule, now - rule.after)
            rows.sort(key=lambda row: (not core.is_source(rule, row[0]), row[0]))
            view = core.view(stores, fingerprints=[fingerprint(rule.id, d) for d, _ in rows])
            judged: list[tuple[str, Judge]] = [
                (device_id, partial(evaluate_offline, rule, seen, now=now))
                for device_id, seen in rows
            ]
            changed += decide_many(core, stores, rule, judged, view, now)
    return changed


def sweep_pending(core: AlertCore, now: datetime) -> int:
    """Open threshold, rate and drift alerts against the latest stored readings and the
    clock.

    A pending alert fires AT ``pending_since + for`` even when its device fell silent
    (the timer survives restarts: it is the row); an alert whose device's latest reading
    clears it resolves even if that reading reached another worker; a rate or drift alert
    whose window holds no reading any more resolves (nothing breaches in it).
    """
    changed = 0
    for rule in core.timed_rules:
        with core.storage.begin() as stores:
            alerts = stores.alerts.open_alerts(rule_ids=[rule.id])
            if not alerts:
                continue
            latest = stores.readings.latest([a.subject for a in alerts], rule.metric)
            view: View = {a.fingerprint: a for a in alerts}
            first: list[tuple[str, Judge]] = []
            due: list[tuple[str, Judge]] = []
            for alert in alerts:
                judges = _timed_judges(core, stores, rule, alert.subject, latest, now)
                if judges is not None:
                    judge, then = judges
                    if judge is not None:
                        first.append((alert.subject, judge))
                    due.append((alert.subject, then))
            # Each alert is its own fingerprint: judging every reading first, then every
            # timer, is what judging them alert by alert does.
            changed += decide_many(core, stores, rule, first, view, now)
            changed += decide_many(core, stores, rule, due, view, now)
    return changed


def _timed_judges(
    core: AlertCore,
    stores: Stores,
    rule: ThresholdMonitor | RateMonitor | DriftMonitor | BaselineMonitor | ForecastMonitor,
    device: str,
    latest: dict[str, Latest],
    now: datetime,
) -> tuple[Judge | None, Judge] | None:
    """The judge of an open alert's latest reading (None: nothing to judge) and of its
    timer; None when the rule no longer applies to the device."""
    judge: Judge | None = None
    if isinstance(rule, ThresholdMonitor):
        compiled = core.by_device.get(device)
        levels = next(
            (
                lv
                for r, lv in (compiled.thresholds.get(rule.metric, ()) if compiled else ())
                if r.id == rule.id
            ),
            None,
        )
        if levels is None:
            return None
        hold = levels.hold
        found = latest.get(device)
        if found is not None and found.value is not None:
            sample = Sample(device, rule.metric, found.ts, received_at=found.ts, value=found.value)
            judge = partial(evaluate_threshold, rule, levels, sample)
    elif isinstance(rule, BaselineMonitor):
        hold = rule.for_  # its band is the device's own: only the timer is left to judge
    else:
        hold = rule.for_
        points = stores.readings.history(device, rule.metric, now - rule.window, now)
        if not points:
            judge = partial(_window_empty, rule, now=now)
    return judge, partial(_due, rule, hold, now=now)


def _window_empty(
    rule: RateMonitor | DriftMonitor | ForecastMonitor, current: OpenAlert | None, now: datetime
) -> Verdict:
    """A rate, drift or forecast alert whose window holds no reading: nothing breaches any more."""
    if current is None:
        return NOTHING
    action: Action = "resolve" if current.state == "firing" else "cancel"
    return Verdict(
        action,
        at=now,
        summary=f"no {rule.metric} reading in the last {rule.window}: nothing breaches",
        severity=rule.severity,
        evidence={"metric": rule.metric, "window_seconds": rule.window.total_seconds()},
    )


def _due(
    rule: ThresholdMonitor | RateMonitor | DriftMonitor | BaselineMonitor | ForecastMonitor,
    hold: timedelta,
    current: OpenAlert | None,
    now: datetime,
) -> Verdict:
    if current is None:
        return NOTHING
    return evaluate_due(rule, hold, current, now)


def sweep_peers(core: AlertCore, now: datetime) -> int:
    """Fleet-peer deviation for every device, one set-based read per rule."""
    changed = 0
    for rule in core.peer_rules:
        with core.storage.begin() as stores:
            open_alerts = stores.alerts.open_alerts(rule_ids=[rule.id])
            open_subjects = [a.subject for a in open_alerts]
            readings = stores.readings.peer_readings(rule, now, open_subjects)
            subjects = sorted(set(readings) | set(open_subjects))
            view = core.view(stores, fingerprints=[fingerprint(rule.id, s) for s in subjects])
            judged: list[tuple[str, Judge]] = [
                (subject, partial(evaluate_peer, rule, readings.get(subject), now=now))
                for subject in subjects
            ]
            changed += decide_many(core, stores, rule, judged, view, now)
    return changed


def sweep_lifecycle(core: AlertCore, now: datetime) -> int:
    """Flapping alerts that settled; firing alerts whose silence, inhibition or flapping
    has ended and that were never announced."""
    changed = 0
    with core.storage.begin() as stores:
        for candidate in stores.alerts.open_alerts(states=["flapping"], rule_ids=core.rules):
            alert = stores.alerts.get(candidate.id)  # locked until the unit ends
            if alert is None or not lifecycle.settled(alert, now, core.alerting.flapping):
                continue
            transition = lifecycle.settle(alert, now)
            core.write(stores, transition, now)
            changed += 1
    notifying = [r.id for r in core.rules.values() if r.notify]
    with core.storage.begin() as stores:
        for candidate in stores.alerts.open_alerts(states=["firing"], rule_ids=notifying):
            if candidate.notified_at is not None:
                continue
            alert = stores.alerts.get(candidate.id)
            if alert is None or alert.notified_at is not None or alert.state != "firing":
                continue
            announced = core.announce(stores, alert, now)
            changed += int(
                announced.notified_at is not None or announced.suppressed_by != alert.suppressed_by
            )
    return changed
