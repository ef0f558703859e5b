"""Learned baseline: the band a device's own history teaches, and readings judged against it.

Pure: the scheduler hands :func:`learn` one hour's aggregate per device (count, sum, sum
of squares: what one grouped SQL pass over the fleet yields) and the band learned so
far; the ingest path hands :func:`evaluate_baseline` a reading and its hour slot's band.

Why an exponentially weighted band and not a median over stored windows: the state is
one row per device and hour slot, updated in one set-based pass per hour, and it follows
a normal range that drifts over weeks. Robustness comes from three places: each hour's
step of the centre is clamped to three learned deviations (a spike or the first hours of
a degradation barely move it), its contribution to the spread is clamped likewise, and
hours in which the device was alerting or silenced teach nothing at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from forewarn.config.schema import BaselineMonitor
from forewarn.monitors.evaluate import NOTHING, OpenAlert, Verdict, progress
from forewarn.telemetry.sample import Sample

BUCKET = timedelta(hours=1)
"""The learning step: one update per device and hour."""
SETTLE = timedelta(minutes=2)
"""An hour is learned this long after it ends (plus ``alerting.lateness``), so readings
sent at its last second are in."""
CLAMP = 3.0
"""An hour moves the centre, and counts towards the spread, by at most this many learned
deviations."""
_SLOTS = {"none": 1, "daily": 24, "weekly": 168}
_EPOCH = datetime.fromisoformat("2000-01-03T00:00:00+00:00")  # a Monday, 00:00 UTC
_EPOCH_SECONDS = _EPOCH.timestamp()


@dataclass(frozen=True)
class Bucket:
    """One device's fresh readings of the metric in one hour: count, sum, sum of squares."""

    count: int
    total: float
    squares: float

    @property
    def mean(self) -> float:
        return self.total / self.count

    @property
    def variance(self) -> float:
        return max(self.squares / self.count - self.mean**2, 0.0)


@dataclass(frozen=True)
class Band:
    """What has been learned for one device and hour slot."""

    center: float
    spread: float
    """Root-mean-square distance of the readings from ``center`` (a standard deviation
    for steady noise; the within-hour cycle and the hour-to-hour wander included)."""
    samples: int
    """Hours learned so far."""


def slots(rule: BaselineMonitor) -> int:
    return _SLOTS[rule.seasonality]


def slot_of(rule: BaselineMonitor, at: datetime) -> int:
    """The hour slot ``at`` belongs to: 0, the UTC hour of the day, or the hour of the week.

    UTC, not the site's time: the profile is learned per device, so a fixed offset does not
    matter (a daylight-saving change shifts it by one hour for a few days)."""
    hours = int((at.timestamp() - _EPOCH_SECONDS) // 3600)
    return hours % _SLOTS[rule.seasonality]


def hour_start(at: datetime) -> datetime:
    return _EPOCH + ((at - _EPOCH) // BUCKET) * BUCKET


def state_key(rule: BaselineMonitor) -> str:
    """Under which name the rule's learned bands are stored: a new seasonality relearns."""
    return f"{rule.id}/{rule.seasonality}"


MIN_HOURS = 3
"""A slot's band is never used on fewer learned hours: one hour's spread is a guess."""


def warm_after(rule: BaselineMonitor) -> int:
    """Hours a slot must have learned before its band is used."""
    return max(MIN_HOURS, math.ceil(rule.warmup / (BUCKET * slots(rule))))


def learn(rule: BaselineMonitor, band: Band | None, bucket: Bucket) -> Band:
    """The band after one more hour of normal readings."""
    if band is None or band.samples == 0:
        return Band(bucket.mean, math.sqrt(bucket.variance), 1)
    samples = band.samples + 1
    # The first hours average plainly; then the memory is ``window`` (per slot).
    weight = max(BUCKET * slots(rule) / rule.window, 1 / samples)
    gap = bucket.mean - band.center
    limit = CLAMP * band.spread if band.spread > 0 else math.inf
    step = min(max(gap, -limit), limit)
    # Readings' squared distance from the centre: within the hour, plus the hour's offset.
    square = min(bucket.variance + gap * gap, limit * limit)
    center = band.center + weight * step
    spread = math.sqrt(max(band.spread**2 + weight * (square - band.spread**2), 0.0))
    return Band(center, spread, samples)


@dataclass(frozen=True)
class Limits:
    """A warm band as levels: fire beyond ``low``/``high``, clear within ``clear_*``."""

    center: float
    low: float
    high: float
    clear_low: float
    clear_high: float

    def outside(self, value: float, direction: str) -> bool:
        return (direction != "below" and value > self.high) or (
            direction != "above" and value < self.low
        )

    def inside(self, value: float, direction: str) -> bool:
        return (direction == "below" or value <= self.clear_high) and (
            direction == "above" or value >= self.clear_low
        )


def limits(rule: BaselineMonitor, band: Band | None) -> Limits | None:
    """The band's levels, or None while it is still warming up."""
    if band is None or band.samples < warm_after(rule):
        return None
    floor = max(rule.min_difference, rule.min_relative * abs(band.center))
    width = max(rule.deviations * band.spread, floor)
    clear = rule.clear_deviations if rule.clear_deviations is not None else rule.deviations * 0.75
    clear_width = max(clear * band.spread, floor * clear / rule.deviations)
    return Limits(
        band.center,
        band.center - width,
        band.center + width,
        band.center - clear_width,
        band.center + clear_width,
    )


def evaluate_baseline(
    rule: BaselineMonitor, band: Band | None, sample: Sample, current: OpenAlert | None
) -> Verdict:
    """A reading against its hour slot's learned band (``band``: None if nothing learned).

    While the band warms up nothing is decided; an open alert stays as it is.
    """
    if sample.stale or sample.value is None:
        return NOTHING
    if current is not None and sample.ts <= current.last_ts:
        return NOTHING
    levels = limits(rule, band)
    if levels is None or band is None:
        return NOTHING
    value = sample.value
    outside = levels.outside(value, rule.direction)
    if current is None and not outside:
        return NOTHING
    deviations = (value - band.center) / band.spread if band.spread > 0 else math.inf
    evidence = {
        "metric": rule.metric,
        "value": value,
        "ts": sample.ts.isoformat(),
        "band": {"low": levels.low, "high": levels.high, "center": band.center},
        "clear": {"low": levels.clear_low, "high": levels.clear_high},
        "spread": band.spread,
        "learned_hours": band.samples,
        "slot": slot_of(rule, sample.ts),
        "for_seconds": rule.for_.total_seconds(),
    }
    base = Verdict(
        "none",
        severity=rule.severity,
        value=value,
        suggested_fix=rule.suggested_fix,
        evidence=evidence,
    )
    side = "above" if value > band.center else "below"
    return progress(
        base,
        breached=outside,
        cleared=levels.inside(value, rule.direction),
        at=sample.ts,
        hold=rule.for_,
        count=1,
        clear_for=timedelta(0),
        current=current,
        summary=(
            f"{rule.metric} {value:.4g} {side} its learned band "
            f"{levels.low:.4g}..{levels.high:.4g} ({deviations:+.1f} deviations)"
        ),
        back=f"{rule.metric} {value:.4g} back within its learned band",
    )
