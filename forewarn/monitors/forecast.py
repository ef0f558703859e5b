"""Time to limit: a robust trend of the recent readings, extrapolated to a hard limit.

Pure (rule + readings + the open alert -> a Verdict, as in :mod:`forewarn.monitors.evaluate`).
The window's readings are first reduced to the medians of twelve equal time slices (noise
and single outliers fall away, and the fit costs the same at any reading rate), then a
Theil-Sen line goes through those medians: the median of the pairwise slopes, which a few
bad slices cannot tilt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from forewarn.config.schema import ForecastMonitor
from forewarn.monitors.evaluate import NOTHING, OpenAlert, Verdict, progress
from forewarn.telemetry.sample import Sample

SLICES = 12
_EPOCH_SECONDS = datetime.fromisoformat("2000-01-03T00:00:00+00:00").timestamp()
STRAIGHT = 0.1
"""A line fits when the slice medians stray from it by (median) no more than this share of
its rise over the window..."""
AGREE = 0.6
"""...and the pairs of slices agree on the direction (Kendall's tau at least this): a step
(a restart after maintenance, a swapped sensor) is not a trend and predicts nothing."""


@dataclass(frozen=True)
class Trend:
    """The fitted line at the newest reading."""

    level: float
    """The line's value at ``at`` (a noisy last reading does not move it much)."""
    per_second: float
    at: datetime


def fit(points: Sequence[tuple[datetime, float]], window: timedelta) -> Trend | None:
    """Theil-Sen line through the slice medians of ``points`` (oldest first), or None if
    fewer than three slices hold a reading or the medians do not lie along a line."""
    end = points[-1][0]
    span = window.total_seconds()
    size = span / SLICES
    slices: dict[int, tuple[list[float], list[float]]] = {}
    for ts, value in points:
        x = (ts - end).total_seconds()  # <= 0: seconds before the newest reading
        index = min(int((x + span) // size), SLICES - 1)
        found = slices.get(index)
        if found is None:
            slices[index] = ([x], [value])
        else:
            found[0].append(x)
            found[1].append(value)
    if len(slices) < 3:
        return None
    xs = []
    vs = []
    for index in sorted(slices):
        times, values = slices[index]
        xs.append(sum(times) / len(times))
        vs.append(_median(values))
    count = len(xs)
    slopes = [
        (vs[j] - vs[i]) / (xs[j] - xs[i])
        for i in range(count)
        for j in range(i + 1, count)
        if xs[j] > xs[i]
    ]
    if not slopes:
        return None
    slope = _median(slopes)
    rising = sum(1 for s in slopes if s > 0) - sum(1 for s in slopes if s < 0)
    if abs(rising) < AGREE * len(slopes):
        return None
    level = _median([v - slope * x for x, v in zip(xs, vs, strict=True)])
    stray = _median([abs(v - level - slope * x) for x, v in zip(xs, vs, strict=True)])
    if stray > STRAIGHT * abs(slope) * span:
        return None
    return Trend(level, slope, end)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def slice_of(at: datetime, window: timedelta) -> int:
    """Which slice of ``window`` (counted from a fixed epoch) ``at`` falls in: the forecast
    is judged at the first reading of each."""
    # In float seconds: this is asked twice per reading of every device with the rule.
    return int((at.timestamp() - _EPOCH_SECONDS) // (window.total_seconds() / SLICES))


def time_to_limit(rule: ForecastMonitor, trend: Trend) -> timedelta | None:
    """How long until the line crosses the rule's limit: zero if past it already, None if
    it is heading away (or flat)."""
    if rule.above is not None:
        gap, rate = rule.above - trend.level, trend.per_second
    else:
        assert rule.below is not None
        gap, rate = trend.level - rule.below, -trend.per_second
    if gap <= 0:
        return timedelta(0)
    if rate <= 0:
        return None
    return timedelta(seconds=min(gap / rate, 10 * 365 * 86400))


def about(eta: timedelta) -> tuple[int | None, int | None]:
    """``eta`` as people say it: (hours, None) from 90 minutes on, else (None, minutes),
    rounded (to 5 minutes under an hour and a half)."""
    minutes = eta.total_seconds() / 60
    if minutes >= 90:
        return round(minutes / 60), None
    return None, max(5, int(5 * round(minutes / 5)))


def evaluate_forecast(
    rule: ForecastMonitor,
    history: Sequence[tuple[datetime, float]],
    sample: Sample,
    current: OpenAlert | None,
) -> Verdict:
    """The trend of ``rule.window`` ending at ``sample`` (``history``: fresh readings of the
    metric, oldest first, up to and including the sample) against the rule's limit."""
    if sample.stale or sample.value is None:
        return NOTHING
    if current is not None and sample.ts <= current.last_ts:
        return NOTHING
    start = sample.ts - rule.window
    points = [(ts, v) for ts, v in history if start <= ts <= sample.ts]
    if len(points) < rule.min_readings or points[-1][0] - points[0][0] < rule.window / 2:
        return NOTHING  # too few readings, or too short a span, to call it a trend
    trend = fit(points, rule.window)
    if trend is None:
        return NOTHING
    eta = time_to_limit(rule, trend)
    clear_horizon = rule.clear_horizon or rule.horizon * 2
    within = eta is not None and eta <= rule.horizon
    if current is None and not within:
        return NOTHING
    limit = rule.above if rule.above is not None else rule.below
    assert limit is not None
    unit = f" {rule.unit}" if rule.unit else ""
    evidence: dict[str, object] = {
        "metric": rule.metric,
        "value": sample.value,
        "ts": sample.ts.isoformat(),
        "level": trend.level,
        "slope_per_hour": trend.per_second * 3600,
        "window_seconds": rule.window.total_seconds(),
        "horizon_seconds": rule.horizon.total_seconds(),
        "readings": len(points),
    }
    if eta is not None:
        hours, minutes = about(eta)
        evidence["forecast"] = {
            "metric": rule.metric,
            "limit": limit,
            "unit": rule.unit,
            "eta_seconds": eta.total_seconds(),
            "expected_at": (sample.ts + eta).isoformat(),
            "hours": hours,
            "minutes": minutes,
        }
        when = f"about {hours} h" if hours is not None else f"about {minutes} min"
        summary = (
            f"{rule.metric} {trend.level:.4g}{unit} and "
            f"{'rising' if trend.per_second > 0 else 'falling'} "
            f"{abs(trend.per_second) * 3600:.3g}{unit}/h: expected to reach "
            f"{limit:g}{unit} in {when}"
        )
        if eta == timedelta(0):
            summary = f"{rule.metric} {trend.level:.4g}{unit} is past its limit {limit:g}{unit}"
    else:
        summary = f"{rule.metric} {trend.level:.4g}{unit} heading away from {limit:g}{unit}"
    base = Verdict(
        "none",
        severity=rule.severity,
        value=sample.value,
        suggested_fix=rule.suggested_fix,
        evidence=evidence,
    )
    return progress(
        base,
        breached=within,
        cleared=eta is None or eta > clear_horizon,
        at=sample.ts,
        hold=rule.for_,
        count=1,
        clear_for=timedelta(0),
        current=current,
        summary=summary,
        back=f"{rule.metric} no longer expected to reach {limit:g}{unit} within "
        f"{_hours(clear_horizon)}",
    )


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} h"
