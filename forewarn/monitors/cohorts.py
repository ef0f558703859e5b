"""Fleet-peer cohorts in Python: each device's latest reading against its cohort's median
and MAD (pure; the SQLite and in-memory stores use it, PostgreSQL does the same in SQL)."""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable
from datetime import datetime

from forewarn.config.schema import PeerMonitor
from forewarn.monitors.trends import PeerReading, peer_deviates

Row = tuple[str, float, datetime, str, str]
"""device id, value, event time, model, cohort group."""


def cohort_readings(
    rule: PeerMonitor, rows: Iterable[Row], alarming: Collection[str], include: Collection[str]
) -> dict[str, PeerReading]:
    """The devices of ``rows`` that deviate from their cohort (same model and group), and
    those in ``include``. Devices in ``alarming`` are left out of the baseline (they would
    drag it towards themselves) and judged against it when included."""
    wanted = set(include)
    cohorts: dict[tuple[str, str], list[tuple[str, float, datetime]]] = {}
    outside: list[Row] = []
    for device, value, ts, model, grp in rows:
        if device in alarming:
            if device in wanted:
                outside.append((device, value, ts, model, grp))
            continue
        cohorts.setdefault((model, grp), []).append((device, value, ts))
    found: dict[str, PeerReading] = {}
    stats: dict[tuple[str, str], tuple[float, float, int]] = {}
    for key, members in cohorts.items():
        if len(members) < rule.min_cohort:
            continue
        median = statistics.median(v for _, v, _ in members)
        mad = statistics.median(abs(v - median) for _, v, _ in members)
        stats[key] = (median, mad, len(members))
        for device, value, ts in members:
            reading = PeerReading(value, ts, median, mad, len(members))
            if device in wanted or peer_deviates(rule, reading):
                found[device] = reading
    for device, value, ts, model, grp in outside:
        if (model, grp) in stats:
            median, mad, size = stats[(model, grp)]
            found[device] = PeerReading(value, ts, median, mad, size)
    return found
