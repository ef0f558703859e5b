"""Pure rule evaluation: rule + sample (or silence) + the open alert -> a Verdict.

No database, no clock: the same code runs live, in tests, in replay and in the simulator.
Time is the samples' own event time, or ``now`` passed in for silence.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from forewarn.config.schema import FaultCodeMonitor, OfflineMonitor, Severity, ThresholdMonitor
from forewarn.monitors.rules import Levels
from forewarn.telemetry.sample import Sample

State = Literal["pending", "firing"]
Action = Literal["none", "pend", "fire", "resolve", "cancel"]


@dataclass(frozen=True)
class OpenAlert:
    """What the evaluator needs to know about an alert that is still open."""

    state: State
    pending_since: datetime
    last_ts: datetime
    """Event time of the last sample that moved this alert; older samples are ignored."""


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


NOTHING = Verdict("none")


def evaluate_threshold(
    rule: ThresholdMonitor, levels: Levels, sample: Sample, current: OpenAlert | None
) -> Verdict:
    """Threshold with a hold time (``for``) and a separate clear level (hysteresis)."""
    if sample.stale or sample.value is None:
        return NOTHING
    if current is not None and sample.ts <= current.last_ts:
        return NOTHING  # out of order or a replay of something already decided
    value = sample.value
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
    summary = f"{rule.metric} {value:g} {levels.describe()}"
    if current is None:
        if not levels.breached(value):
            return NOTHING
        action: Action = "fire" if levels.hold <= timedelta(0) else "pend"
        return replace(base, action=action, at=sample.ts, summary=summary)
    if current.state == "pending":
        if not levels.breached(value):
            back = f"{rule.metric} {value:g} back to normal"
            return replace(base, action="cancel", at=sample.ts, summary=back)
        if sample.ts - current.pending_since >= levels.hold:
            evidence["held_since"] = current.pending_since.isoformat()
            return replace(base, action="fire", at=sample.ts, summary=summary)
        return NOTHING
    if levels.cleared(value):
        cleared = f"{rule.metric} {value:g} cleared (clear level {levels.clear:g})"
        return replace(base, action="resolve", at=sample.ts, summary=cleared)
    return NOTHING


def evaluate_fault_code(
    rule: FaultCodeMonitor, sample: Sample, current: OpenAlert | None
) -> Verdict:
    """A listed code fires at once; any other code from the device clears it."""
    if sample.stale or sample.code is None:
        return NOTHING
    if current is not None and sample.ts <= current.last_ts:
        return NOTHING
    fault = rule.codes.get(sample.code)
    evidence = {"code": sample.code, "ts": sample.ts.isoformat()}
    if fault is not None:
        if current is not None:
            return NOTHING
        return Verdict(
            "fire",
            at=sample.ts,
            summary=f"fault {sample.code}: {fault.description}",
            severity=fault.severity,
            suggested_fix=fault.suggested_fix,
            evidence=evidence,
        )
    if current is not None:
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
    """Silent for ``rule.after`` fires AT the timeout (last_seen + after), not at reconnect."""
    deadline = last_seen + rule.after
    evidence = {"last_seen": last_seen.isoformat(), "after_seconds": rule.after.total_seconds()}
    if current is None and now >= deadline:
        return Verdict(
            "fire",
            at=deadline,
            summary=f"no data since {last_seen:%Y-%m-%d %H:%M:%S} UTC",
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
