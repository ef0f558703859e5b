"""A new rule version judges the open alerts of the rules it changed, at once.

Without this an open alert would keep the verdict of the old levels until its device's
next reading, and the change that moved it would not be visible. Here every transition a
rule change causes carries ``evidence.cause = {"rule_change": <version>, ...}`` in
``alert_events``:

* a threshold alert is judged against its device's latest reading under the new levels
  (:func:`rejudge_threshold`): a firing alert whose value is now at the clear level
  resolves; a pending one whose value no longer breaches is cancelled, and one whose new
  ``for`` has already passed fires;
* an alert whose rule was removed, or that no longer watches the device, is closed (under
  the old rule, so ticketing hears the resolution of what it was told);
* every other kind is judged by its own scheduled check, run now for the changed rules
  only (offline timers, rate and drift windows, fleet peers, pending timers).

New breaches (a lowered level the latest value already crosses) are found by the next
reading, as any breach is: re-judging only ever moves alerts that are open.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from forewarn.config.schema import ThresholdMonitor
from forewarn.monitors import sweeps
from forewarn.monitors.core import AlertCore, Judge, View
from forewarn.monitors.evaluate import NOTHING, SEVERITY_RANK, OpenAlert, Verdict
from forewarn.monitors.rules import Levels

log = logging.getLogger(__name__)


def rejudge_threshold(
    rule: ThresholdMonitor,
    levels: Levels,
    value: float | None,
    now: datetime,
    current: OpenAlert | None,
) -> Verdict:
    """An open threshold alert under new ``levels``, given the device's latest ``value``."""
    if current is None or value is None:
        return NOTHING
    evidence: dict[str, Any] = {
        "metric": rule.metric,
        "value": value,
        "levels": {"above": levels.above, "below": levels.below, "clear": levels.clear},
        "for_seconds": levels.hold.total_seconds(),
    }
    base = Verdict(
        "none",
        at=now,
        severity=rule.severity,
        value=value,
        suggested_fix=rule.suggested_fix,
        evidence=evidence,
        breaches=current.breaches,
    )
    described = f"{rule.metric} {value:g} under the new level {levels.describe()}"
    if current.state == "pending":
        if not levels.breached(value):
            return _with(base, "cancel", f"{described}: no longer breaches")
        if now - current.pending_since >= levels.hold and current.breaches >= rule.count:
            return _with(base, "fire", f"{described}: held since {current.pending_since:%H:%M}")
        return NOTHING
    if levels.cleared(value):
        return _with(base, "resolve", f"{described}: cleared")
    if SEVERITY_RANK[rule.severity] > SEVERITY_RANK.get(current.severity or "", 2):
        return _with(base, "escalate", f"{described}: severity raised to {rule.severity}")
    return NOTHING


def _with(base: Verdict, action: str, summary: str) -> Verdict:
    from dataclasses import replace

    return replace(base, action=action, summary=summary)  # type: ignore[arg-type]


def _close(what: str, now: datetime, current: OpenAlert | None) -> Verdict:
    if current is None:
        return NOTHING
    action = "resolve" if current.state == "firing" else "cancel"
    return Verdict(action, at=now, summary=what, evidence={})  # type: ignore[arg-type]


def reevaluate(
    old: AlertCore,
    new: AlertCore,
    changed: Collection[str],
    now: datetime,
    cause: Mapping[str, Any],
    checks: AlertCore | None = None,
) -> int:
    """Judge the open alerts of the ``changed`` rule ids again under ``new`` (``old``:
    the core of the version before; neither may be judging live readings, since their
    ``cause`` is set meanwhile). ``checks``: a core over the changed rules only,
    whose scheduled checks run now. Returns how many alerts changed."""
    if not changed:
        return 0
    moved = 0
    # Cores of their own (not the ones judging live readings), so only these
    # transitions say the rule change caused them.
    for core in (old, new, checks):
        if core is not None:
            core.cause = cause
    try:
        with new.storage.begin() as stores:
            alerts = stores.alerts.open_alerts(rule_ids=sorted(changed))
            latest: dict[tuple[str, str], float | None] = {}
            for rule_id in {a.rule_id for a in alerts}:
                rule = new.rules.get(rule_id)
                if isinstance(rule, ThresholdMonitor):
                    subjects = [a.subject for a in alerts if a.rule_id == rule_id]
                    for subject, found in stores.readings.latest(subjects, rule.metric).items():
                        latest[(subject, rule.metric)] = found.value
            old_view: View = {a.fingerprint: a for a in alerts}
            new_view: View = dict(old_view)
            for alert in alerts:
                rule = new.rules.get(alert.rule_id)
                device = new.by_device.get(alert.subject)
                watches = rule is not None and (
                    device is None
                    or not isinstance(rule, ThresholdMonitor)
                    or any(r.id == rule.id for r, _ in device.thresholds.get(rule.metric, ()))
                )
                judge: Judge
                if rule is None or not watches:
                    previous = old.rules.get(alert.rule_id)
                    if previous is None:
                        continue
                    what = (
                        f"rule {alert.rule_id} removed in version {cause.get('rule_change')}"
                        if rule is None
                        else f"rule {alert.rule_id} no longer watches {alert.subject}"
                    )
                    judge = partial(_close, what, now)
                    moved += old.decide(stores, previous, alert.subject, old_view, now, judge)
                elif isinstance(rule, ThresholdMonitor) and device is not None:
                    levels = next(lv for r, lv in device.thresholds[rule.metric] if r.id == rule.id)
                    value = latest.get((alert.subject, rule.metric))
                    judge = partial(rejudge_threshold, rule, levels, value, now)
                    moved += new.decide(stores, rule, alert.subject, new_view, now, judge)
        if checks is not None:
            report = sweeps.sweep(checks, now)
            moved += report.total
    finally:
        for core in (old, new, checks):
            if core is not None:
                core.cause = None
    if moved:
        log.info(
            "rule change: %d open alert(s) moved under version %s", moved, cause.get("rule_change")
        )
    return moved
