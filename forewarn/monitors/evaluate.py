"""Pure rule evaluation: rule + sample (or silence) + the open alert -> a Verdict.

No database, no clock: the same code runs live, in tests, in replay and in the simulator.
Time is the samples' own event time, or ``now`` passed in for silence and timers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from forewarn.config.schema import (
    BaselineMonitor,
    DriftMonitor,
    FaultCodeMonitor,
    ForecastMonitor,
    OfflineMonitor,
    PeerMonitor,
    RateMonitor,
    Severity,
    ThresholdMonitor,
)
from forewarn.monitors.rules import Levels
from forewarn.telemetry.sample import Sample

State = Literal["pending", "firing"]
Action = Literal["none", "pend", "fire", "resolve", "cancel", "progress", "escalate"]
"""``progress`` updates an open alert's counters (N in a row, clear_for) without a change
of state, so it writes no ``alert_events`` row. ``escalate`` raises an open alert's
severity (a worse fault code while it is open) without a change of state."""
SEVERITY_RANK = {"info": 0, "minor": 1, "major": 2, "critical": 3}


@dataclass(frozen=True)
class OpenAlert:
    """What the evaluator needs to know about an alert that is still open."""

    state: State
    pending_since: datetime
    last_ts: datetime
    """Event time of the last sample that moved this alert; older samples are ignored."""
    breaches: int = 1
    """Consecutive readings beyond the level (N-in-a-row rules)."""
    clearing_since: datetime | None = None
    """Since when the value has been at the clear level (``clear_for``)."""
    severity: str | None = None
    """The alert's severity now (a worse fault code raises it)."""


@dataclass(frozen=True)
class Verdict:
    """What should happen to the alert of one rule on one subject."""

    action: Action
    at: datetime | None = None
    """Event time of the change (for 'fire': when the condition had held long enough)."""
    summary: str = ""
    severity: Severity = "major"
    value: float | None = None
    suggested_fix: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    breaches: int = 0
    clearing_since: datetime | None = None


NOTHING = Verdict("none")


def progress(
    base: Verdict,
    *,
    breached: bool,
    cleared: bool,
    at: datetime,
    hold: timedelta,
    count: int,
    clear_for: timedelta,
    current: OpenAlert | None,
    summary: str,
    back: str,
) -> Verdict:
    """The pending -> firing -> resolved machine shared by threshold-like rules."""
    if current is None:
        if not breached:
            return NOTHING
        action: Action = "fire" if hold <= timedelta(0) and count <= 1 else "pend"
        return replace(base, action=action, at=at, summary=summary, breaches=1)
    if current.state == "pending":
        if not breached:
            return replace(base, action="cancel", at=at, summary=back)
        breaches = current.breaches + 1
        if breaches >= count and at - current.pending_since >= hold:
            base.evidence["held_since"] = current.pending_since.isoformat()
            if count > 1:
                base.evidence["in_a_row"] = breaches
            return replace(base, action="fire", at=at, summary=summary, breaches=breaches)
        if count > 1:
            return replace(base, action="progress", at=at, breaches=breaches)
        return NOTHING
    if cleared:
        if clear_for <= timedelta(0):
            return replace(base, action="resolve", at=at, summary=back)
        if current.clearing_since is None:
            return replace(
                base, action="progress", at=at, breaches=current.breaches, clearing_since=at
            )
        if at - current.clearing_since >= clear_for:
            base.evidence["clear_since"] = current.clearing_since.isoformat()
            return replace(base, action="resolve", at=at, summary=back)
        return NOTHING
    if current.clearing_since is not None:
        return replace(base, action="progress", at=at, breaches=current.breaches)
    return NOTHING


def evaluate_threshold(
    rule: ThresholdMonitor, levels: Levels, sample: Sample, current: OpenAlert | None
) -> Verdict:
    """Threshold with a hold time (``for``), N in a row (``count``) and a separate clear
    level and duration (hysteresis)."""
    if sample.stale or sample.value is None:
        return NOTHING
    if current is not None and sample.ts <= current.last_ts:
        return NOTHING  # out of order or a replay of something already decided
    value = sample.value
    if current is None and not levels.breached(value):
        return NOTHING  # the common case, decided before any evidence is built
    evidence = {
        "metric": rule.metric,
        "value": value,
        "ts": sample.ts.isoformat(),
        "levels": {"above": levels.above, "below": levels.below, "clear": levels.clear},
        "for_seconds": levels.hold.total_seconds(),
    }
    base = Verdict(
        "none",
        severity=rule.severity,
        value=value,
        suggested_fix=rule.suggested_fix,
        evidence=evidence,
    )
    describe = levels.describe() + (f", {rule.count} in a row" if rule.count > 1 else "")
    cleared = f"{rule.metric} {value:g} cleared (clear level {levels.clear:g})"
    return progress(
        base,
        breached=levels.breached(value),
        cleared=levels.cleared(value),
        at=sample.ts,
        hold=levels.hold,
        count=rule.count,
        clear_for=rule.clear_for,
        current=current,
        summary=f"{rule.metric} {value:g} {describe}",
        back=cleared
        if current is not None and current.state == "firing"
        else (f"{rule.metric} {value:g} back to normal"),
    )


def evaluate_due(
    rule: ThresholdMonitor
    | RateMonitor
    | DriftMonitor
    | PeerMonitor
    | BaselineMonitor
    | ForecastMonitor,
    hold: timedelta,
    current: OpenAlert,
    now: datetime,
) -> Verdict:
    """The timer of a pending alert: it fires AT ``pending_since + for`` even if no reading
    arrives any more (the device fell silent, or the reading went to another worker).

    N-in-a-row rules wait for their readings: a timer cannot count them.
    """
    count = rule.count if isinstance(rule, ThresholdMonitor) else 1
    deadline = current.pending_since + hold
    if current.state != "pending" or now < deadline or current.breaches < count:
        return NOTHING
    return Verdict(
        "fire",
        at=deadline,
        summary=f"{rule.metric} beyond its level since {current.pending_since:%H:%M:%S} UTC",
        severity=rule.severity,
        suggested_fix=rule.suggested_fix,
        evidence={
            "held_since": current.pending_since.isoformat(),
            "for_seconds": hold.total_seconds(),
            "fired_by": "timer",
            "last_reading": current.last_ts.isoformat(),
        },
        breaches=current.breaches,
    )


def evaluate_fault_code(
    rule: FaultCodeMonitor, sample: Sample, current: OpenAlert | None
) -> Verdict:
    """A listed code fires at once; a more severe listed code raises the open alert; a
    clear code (``clear_codes``; any unlisted one if that is empty) clears it. Another
    unlisted code (junk, an unknown status) leaves a real fault open."""
    if sample.stale or sample.code is None:
        return NOTHING
    if current is not None and sample.ts <= current.last_ts:
        return NOTHING
    fault = rule.codes.get(sample.code)
    evidence = {"code": sample.code, "ts": sample.ts.isoformat()}
    if fault is not None:
        summary = f"fault {sample.code}: {fault.description}"
        if current is None:
            return Verdict(
                "fire",
                at=sample.ts,
                summary=summary,
                severity=fault.severity,
                suggested_fix=fault.suggested_fix,
                evidence=evidence,
            )
        worse = SEVERITY_RANK[fault.severity] > SEVERITY_RANK.get(current.severity or "", 2)
        if current.state != "firing" or not worse:
            return NOTHING
        evidence["raised_from"] = current.severity or ""
        return Verdict(
            "escalate",
            at=sample.ts,
            summary=summary,
            severity=fault.severity,
            suggested_fix=fault.suggested_fix,
            evidence=evidence,
        )
    if current is not None and (not rule.clear_codes or sample.code in rule.clear_codes):
        return Verdict(
            "resolve",
            at=sample.ts,
            summary=f"status {sample.code}: fault cleared",
            severity=rule.severity,
            evidence=evidence,
        )
    return NOTHING


def evaluate_offline(
    rule: OfflineMonitor, last_seen: datetime, current: OpenAlert | None, now: datetime
) -> Verdict:
    """Silent for ``rule.after`` fires AT the timeout (last_seen + after), not at reconnect.

    The boundary: silent from ``now >= last_seen + after`` on (the sweep's SQL uses the
    same ``last_seen <= now - after``).
    """
    deadline = last_seen + rule.after
    what = f"no {rule.metric} reading" if rule.metric else "no data"
    evidence: dict[str, Any] = {
        "last_seen": last_seen.isoformat(),
        "after_seconds": rule.after.total_seconds(),
    }
    if rule.metric:
        evidence["metric"] = rule.metric
    if current is None and now >= deadline:
        return Verdict(
            "fire",
            at=deadline,
            summary=f"{what} since {last_seen:%Y-%m-%d %H:%M:%S} UTC",
            severity=rule.severity,
            evidence=evidence,
        )
    if current is not None and current.state == "firing" and now < deadline:
        return Verdict(
            "resolve",
            at=last_seen,
            summary="reporting again",
            severity=rule.severity,
            evidence=evidence,
        )
    return NOTHING
