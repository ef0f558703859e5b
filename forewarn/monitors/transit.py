"""Learned transit times: percentiles of "time from milestone M to delivery" per carrier
and region (pure), and the conditional estimate for an order still on its way."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

ANY = "*"
"""The carrier or region of a transit group that pools every carrier or region."""
PERCENTILES = tuple(range(1, 100))
"""The percentiles kept per transit group (p1..p99)."""


def transit_region(
    region: str | None, placed: datetime | None, promised: datetime | None
) -> str | None:
    """The region an order's transit times are grouped under.

    A feed without a region column still says how far away the customer is: the seller
    promised a later date to a farther address. So the promised horizon, in weekly bands
    (``~14-21d``), stands in for the region.
    """
    if region or placed is None or promised is None:
        return region
    week = max(0, int((promised - placed).total_seconds() // (7 * 86400)))
    return f"~{week * 7}-{week * 7 + 7}d" if week < 6 else "~42d+"


@dataclass(frozen=True)
class TransitTimes:
    """Percentiles p1..p99 of the time from one milestone to delivery, in seconds."""

    samples: int
    percentiles: tuple[float, ...]
    _past: dict[int, tuple[float | None, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def quantile(self, q: int) -> float:
        return self.percentiles[q - 1]

    def remaining_quantile(self, elapsed: float, q: int) -> float | None:
        """The ``q``-th percentile of the total time among orders that took longer than
        ``elapsed``; ``None`` when this one already took longer than nearly all of them."""
        # The percentiles ascend, so those above ``elapsed`` are a suffix: found by
        # bisection, not a scan (the at-risk rule asks this for every percentile).
        first = bisect.bisect_right(self.percentiles, elapsed)
        tail = len(self.percentiles) - first
        if not tail:
            return None
        return self.percentiles[first + max(0, math.ceil(q / 100 * tail) - 1)]

    def totals_past(self, q: int) -> tuple[float | None, ...]:
        """``remaining_quantile(percentiles[i], q)`` for every ``i``, worked out once per
        ``q`` (the at-risk rule looks for the first one past the promise)."""
        found = self._past.get(q)
        if found is None:
            found = tuple(self.remaining_quantile(p, q) for p in self.percentiles)
            self._past[q] = found
        return found


TransitKey = tuple[str, str, str]
"""(carrier or ``*``, region or ``*``, from milestone)."""


@dataclass(frozen=True)
class TransitBook:
    """The learned transit times, with fallback to wider groups when a group is thin."""

    groups: Mapping[TransitKey, TransitTimes] = field(default_factory=dict)
    _found: dict[
        tuple[str | None, str | None, str, int], tuple[TransitKey, TransitTimes] | None
    ] = field(default_factory=dict, init=False, repr=False, compare=False)

    def lookup(
        self, carrier: str | None, region: str | None, milestone: str, min_samples: int
    ) -> tuple[TransitKey, TransitTimes] | None:
        """The narrowest group with at least ``min_samples`` deliveries (remembered: a book
        does not change once learned)."""
        asked = (carrier, region, milestone, min_samples)
        if asked in self._found:
            return self._found[asked]
        found = self._lookup(carrier, region, milestone, min_samples)
        self._found[asked] = found
        return found

    def _lookup(
        self, carrier: str | None, region: str | None, milestone: str, min_samples: int
    ) -> tuple[TransitKey, TransitTimes] | None:
        carrier, region = carrier or ANY, region or ANY
        for key in dict.fromkeys(
            [
                (carrier, region, milestone),
                (carrier, ANY, milestone),
                (ANY, region, milestone),
                (ANY, ANY, milestone),
            ]
        ):
            times = self.groups.get(key)
            if times is not None and times.samples >= min_samples:
                return key, times
        return None


def learn_transit(
    deliveries: Iterable[tuple[str | None, str | None, str, float]],
) -> dict[TransitKey, TransitTimes]:
    """Percentiles per group from ``(carrier, region, from_milestone, seconds)`` tuples.

    Every delivery counts in its own group and in the pooled ones (carrier only, region
    only, everything), so a thin group can fall back on a wider one.
    """
    pools: dict[TransitKey, list[float]] = {}
    for carrier, region, milestone, seconds in deliveries:
        if seconds < 0:
            continue  # a delivery stamped before the milestone: bad data, not a transit time
        carrier, region = carrier or ANY, region or ANY
        for key in {
            (carrier, region, milestone),
            (carrier, ANY, milestone),
            (ANY, region, milestone),
            (ANY, ANY, milestone),
        }:
            pools.setdefault(key, []).append(seconds)
    return {key: percentiles(values) for key, values in pools.items()}


def percentiles(values: Sequence[float]) -> TransitTimes:
    """p1..p99 by linear interpolation between closest ranks."""
    ordered = sorted(values)
    n = len(ordered)
    out = []
    for p in PERCENTILES:
        rank = (n - 1) * p / 100
        low = math.floor(rank)
        high = min(low + 1, n - 1)
        out.append(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))
    return TransitTimes(samples=n, percentiles=tuple(out))


def miss_probability(times: TransitTimes, elapsed: float, allowed: float) -> float:
    """P(transit > ``allowed`` | transit > ``elapsed``), in seconds since the milestone,
    from the learned percentiles (interpolated between them)."""
    if allowed <= elapsed:
        return 1.0
    survive_elapsed = _survival(times, elapsed)
    if survive_elapsed <= 0:
        return 1.0  # longer already than every delivery learned: it will be late
    return min(1.0, _survival(times, allowed) / survive_elapsed)


def _survival(times: TransitTimes, seconds: float) -> float:
    """The share of deliveries that took longer than ``seconds`` (0.995 .. 0.005 within the
    learned p1..p99, linear between them)."""
    points = times.percentiles
    if seconds < points[0]:
        return 1.0
    if seconds >= points[-1]:
        return 0.0
    index = bisect.bisect_right(points, seconds) - 1
    low, high = points[index], points[index + 1]
    share = (seconds - low) / (high - low) if high > low else 1.0
    return 1 - (index + 1 + share) / 100


def first_at_risk(
    times: TransitTimes, since: datetime, limit: datetime, elapsed: float, threshold: float
) -> datetime | None:
    """The first moment the risk reaches ``threshold`` if nothing new is heard (it only
    grows while the order waits): bisection over the learned percentiles' crossings."""
    points = times.percentiles
    allowed = (limit - since).total_seconds()

    def risky(index: int) -> bool:
        return miss_probability(times, points[index], allowed) >= threshold

    low, high = bisect.bisect_right(points, elapsed), len(points)
    if low == high or not risky(high - 1):
        return None
    while low < high:
        middle = (low + high) // 2
        if risky(middle):
            high = middle
        else:
            low = middle + 1
    return since + timedelta(seconds=points[low])
