"""Pure rule evaluation: rule + sample (or silence) + the open alert -> a Verdict.

No database, no clock: the same code runs live, in tests, in replay and in the simulator.
Time is the samples' own event time, or ``now`` passed in for silence and timers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from forewarn.config.durations import format_duration
from forewarn.config.schema import (
    DriftMonitor,
    FaultCodeMonitor,
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


def _progress(
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
    return _progress(
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
    rule: ThresholdMonitor | RateMonitor | DriftMonitor | PeerMonitor,
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


def slope(points: Sequence[tuple[datetime, float]]) -> float:
    """Least-squares slope in units per second (robust to one noisy reading, unlike the
    difference of the first and last)."""
    origin = points[0][0]
    xs = [(ts - origin).total_seconds() for ts, _ in points]
    ys = [value for _, value in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def evaluate_rate(
    rule: RateMonitor,
    history: Sequence[tuple[datetime, float]],
    sample: Sample,
    current: OpenAlert | None,
) -> Verdict:
    """Rate of change over ``rule.window`` ending at ``sample`` (event time).

    ``history`` holds fresh readings of the metric, oldest first, up to and including the
    sample; those older than the window are ignored here.
    """
    if sample.stale or sample.value is None:
        return NOTHING
    if current is not None and sample.ts <= current.last_ts:
        return NOTHING
    start = sample.ts - rule.window
    points = [(ts, v) for ts, v in history if start <= ts <= sample.ts]
    if len(points) < rule.min_readings or points[-1][0] - points[0][0] < rule.window / 2:
        return NOTHING  # too few readings or too short a span to call it a trend
    rate = slope(points) * rule.per.total_seconds()
    limit = rule.rise if rule.rise is not None else -(rule.fall or 0.0)
    breached = rate > limit if rule.rise is not None else rate < limit
    unit = f"per {_per(rule.per)}"
    evidence = {
        "metric": rule.metric,
        "rate": rate,
        "limit": limit,
        "per_seconds": rule.per.total_seconds(),
        "window_seconds": rule.window.total_seconds(),
        "readings": [[ts.isoformat(), v] for ts, v in points],
    }
    base = Verdict(
        "none",
        severity=rule.severity,
        value=sample.value,
        suggested_fix=rule.suggested_fix,
        evidence=evidence,
    )
    direction = "rising" if rule.rise is not None else "falling"
    return _progress(
        base,
        breached=breached,
        cleared=not breached,
        at=sample.ts,
        hold=rule.for_,
        count=1,
        clear_for=timedelta(0),
        current=current,
        summary=f"{rule.metric} {direction} {abs(rate):.3g} {unit} (limit {abs(limit):g})",
        back=f"{rule.metric} changing {rate:+.3g} {unit}, within the limit",
    )


@dataclass(frozen=True)
class Average:
    """The mean of a metric's fresh readings over a span, as the store aggregates it."""

    mean: float | None
    count: int
    first: datetime | None = None
    """Event time of the oldest reading counted."""

    @classmethod
    def of(cls, points: Sequence[tuple[datetime, float]]) -> Average:
        if not points:
            return cls(None, 0)
        return cls(sum(v for _, v in points) / len(points), len(points), min(t for t, _ in points))


def evaluate_drift(
    rule: DriftMonitor,
    recent: Average,
    baseline: Average,
    sample: Sample,
    current: OpenAlert | None,
) -> Verdict:
    """The moving average (``recent``: the readings of ``rule.window`` up to and including
    ``sample``) against the device's own ``baseline`` (the ``rule.baseline`` span just
    before the window).

    Too few readings on either side, or a baseline covering less than half its span (a
    device that only just started reporting), decide nothing.
    """
    if sample.stale or sample.value is None:
        return NOTHING
    if current is not None and sample.ts <= current.last_ts:
        return NOTHING
    if (
        recent.mean is None
        or baseline.mean is None
        or baseline.first is None
        or recent.count < rule.min_readings
        or baseline.count < rule.min_readings
        or sample.ts - rule.window - baseline.first < rule.baseline / 2
    ):
        return NOTHING
    drift = recent.mean - baseline.mean
    gap = {"above": drift, "below": -drift, "both": abs(drift)}[rule.direction]
    needed = max(
        rule.by if rule.by is not None else 0.0,
        rule.by_relative * abs(baseline.mean) if rule.by_relative is not None else 0.0,
    )
    drifting = gap > needed
    relative = drift / baseline.mean * 100 if baseline.mean else 0.0
    evidence = {
        "metric": rule.metric,
        "value": sample.value,
        "ts": sample.ts.isoformat(),
        "moving_average": recent.mean,
        "window_readings": recent.count,
        "window_seconds": rule.window.total_seconds(),
        "baseline": baseline.mean,
        "baseline_readings": baseline.count,
        "baseline_seconds": rule.baseline.total_seconds(),
        "drift": drift,
        "limit": needed,
    }
    base = Verdict(
        "none",
        severity=rule.severity,
        value=sample.value,
        suggested_fix=rule.suggested_fix,
        evidence=evidence,
    )
    return _progress(
        base,
        breached=drifting,
        cleared=not drifting,
        at=sample.ts,
        hold=rule.for_,
        count=1,
        clear_for=timedelta(0),
        current=current,
        summary=(
            f"{rule.metric} {format_duration(rule.window)} average {recent.mean:.4g} drifted "
            f"{drift:+.3g} ({relative:+.0f} %) from its baseline {baseline.mean:.4g}"
        ),
        back=f"{rule.metric} average {recent.mean:.4g} back near its baseline {baseline.mean:.4g}",
    )


def _per(per: timedelta) -> str:
    seconds = int(per.total_seconds())
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds == size:
            return name
    return f"{seconds}s"


@dataclass(frozen=True)
class PeerReading:
    """One device's latest reading against its cohort's robust statistics."""

    value: float
    ts: datetime
    median: float
    mad: float
    cohort_size: int


def peer_deviates(rule: PeerMonitor, reading: PeerReading) -> bool:
    """Far from the cohort: beyond ``deviations`` scaled MADs, ``min_difference`` and
    ``min_relative`` of the median, on the configured side. (The sweep's SQL filter says
    the same; this is the one definition the tests and replay rely on.)"""
    gap = reading.value - reading.median
    if rule.direction == "below":
        gap = -gap
    elif rule.direction == "both":
        gap = abs(gap)
    needed = max(
        rule.deviations * 1.4826 * reading.mad,
        rule.min_difference,
        rule.min_relative * abs(reading.median),
    )
    return gap > needed and reading.cohort_size >= rule.min_cohort


def evaluate_peer(
    rule: PeerMonitor, reading: PeerReading | None, current: OpenAlert | None, now: datetime
) -> Verdict:
    """Fleet-peer deviation, judged at ``now`` from the device's latest reading.

    ``reading`` is None when the device has no fresh reading in a large enough cohort:
    nothing is decided then (silence is the offline rule's business).
    """
    if reading is None:
        return NOTHING
    deviates = peer_deviates(rule, reading)
    evidence = {
        "metric": rule.metric,
        "value": reading.value,
        "ts": reading.ts.isoformat(),
        "cohort_median": reading.median,
        "cohort_mad": reading.mad,
        "cohort_size": reading.cohort_size,
        "deviations": rule.deviations,
    }
    base = Verdict(
        "none",
        severity=rule.severity,
        value=reading.value,
        suggested_fix=rule.suggested_fix,
        evidence=evidence,
    )
    pct = (reading.value - reading.median) / reading.median * 100 if reading.median else 0.0
    summary = (
        f"{rule.metric} {reading.value:g} vs {reading.median:g} median of "
        f"{reading.cohort_size} peers ({pct:+.0f} %)"
    )
    if current is None:
        if not deviates:
            return NOTHING
        action: Action = "fire" if rule.for_ <= timedelta(0) else "pend"
        return replace(base, action=action, at=now, summary=summary, breaches=1)
    if current.state == "pending":
        if not deviates:
            return replace(base, action="cancel", at=now, summary="back in line with peers")
        if now - current.pending_since >= rule.for_:
            evidence["held_since"] = current.pending_since.isoformat()
            return replace(base, action="fire", at=now, summary=summary, breaches=1)
        return NOTHING
    if not deviates:
        return replace(base, action="resolve", at=now, summary="back in line with peers")
    return NOTHING
