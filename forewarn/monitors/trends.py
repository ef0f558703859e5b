"""Pure evaluation of trends: rate of change, drift from a baseline, deviation from the
fleet's peers (rule + readings + the open alert -> a Verdict, as in
:mod:`forewarn.monitors.evaluate`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from forewarn.config.durations import format_duration
from forewarn.config.schema import DriftMonitor, PeerMonitor, RateMonitor
from forewarn.monitors.evaluate import NOTHING, Action, OpenAlert, Verdict, progress
from forewarn.telemetry.sample import Sample


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
    return progress(
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
    return progress(
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
