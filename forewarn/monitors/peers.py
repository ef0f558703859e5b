"""Fleet-peer deviation as one set-based query per rule (median and MAD in SQL).

For every cohort (same model, same site or region) of devices with a fresh latest
reading and no firing alert, the query ranks the values to find the median, then ranks
the absolute deviations from it to find the MAD (median absolute deviation), with window
functions that SQLite (3.25+) and PostgreSQL both run. It returns only the devices that
deviate, plus those named in ``include`` (open alerts, so they can resolve): a handful of
rows, whatever the size of the fleet.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from forewarn.config.schema import PeerMonitor
from forewarn.monitors.evaluate import PeerReading
from forewarn.store.alerting import LatestReading
from forewarn.store.models import Alert, Device, Site

_SIGMA = 1.4826
"""Scales the MAD to a standard deviation for normally distributed values."""


def peer_readings(
    session: Session,
    rule: PeerMonitor,
    now: datetime,
    include: Sequence[str],
    scope: Sequence[ColumnElement[bool]],
) -> dict[str, PeerReading]:
    """Devices that deviate from their cohort under ``rule`` (and those in ``include``),
    each with its value and its cohort's median, MAD and size."""
    group = Device.site_id if rule.cohort == "site" else Site.region
    latest = (
        select(
            LatestReading.device_id.label("device_id"),
            LatestReading.value.label("value"),
            LatestReading.ts.label("ts"),
            Device.model.label("model"),
            group.label("grp"),
        )
        .join(Device, Device.id == LatestReading.device_id)
        .where(
            LatestReading.metric == rule.metric,
            LatestReading.ts >= now - rule.fresh,
            LatestReading.value.is_not(None),
            *scope,
        )
    )
    if rule.cohort == "region":
        latest = latest.join(Site, Site.id == Device.site_id)
    fresh = latest.cte("fresh")
    # Devices already alarming would drag the baseline towards themselves.
    alarming = select(Alert.subject).where(
        Alert.open_fingerprint.is_not(None),
        or_(Alert.state == "firing", Alert.condition == "firing"),
    )
    baseline = select(fresh).where(fresh.c.device_id.not_in(alarming)).cte("baseline")
    # Window functions only, no self-joins: a join of cohort statistics back onto 100 000
    # rows has no index to use and turned into a nested loop (minutes on SQLite).
    cohort = (baseline.c.model, baseline.c.grp)
    ranked = select(
        baseline,
        func.row_number().over(partition_by=cohort, order_by=baseline.c.value).label("rn"),
        func.count().over(partition_by=cohort).label("n"),
    ).cte("ranked")
    medians = select(ranked, _middle(ranked.c.value, ranked).label("median")).cte("medians")
    gap_of = func.abs(medians.c.value - medians.c.median)
    gaps = select(
        medians,
        gap_of.label("gap"),
        func.row_number()
        .over(partition_by=(medians.c.model, medians.c.grp), order_by=gap_of)
        .label("gap_rn"),
    ).cte("gaps")
    stats = (
        select(gaps, _middle(gaps.c.gap, gaps, rank=gaps.c.gap_rn).label("mad"))
        .where(gaps.c.n >= rule.min_cohort)
        .cte("stats")
    )
    far = _far(rule, stats.c.value, stats.c.median, stats.c.mad)
    wanted = or_(far, stats.c.device_id.in_(list(include))) if include else far
    columns = ("device_id", "value", "ts", "median", "mad", "n")
    rows: list[tuple[Any, ...]] = [
        tuple(row) for row in session.execute(select(*(stats.c[c] for c in columns)).where(wanted))
    ]
    if include:
        # Devices with an open alert that are alarming are not in the baseline: judge them
        # against their cohort's statistics, looked up by cohort (no join onto the fleet).
        outside = session.execute(
            select(fresh.c.device_id, fresh.c.value, fresh.c.ts, fresh.c.model, fresh.c.grp).where(
                fresh.c.device_id.in_(list(include)), fresh.c.device_id.in_(alarming)
            )
        ).all()
        if outside:
            groups = sorted({g for *_, g in outside})
            found = session.execute(
                select(stats.c.model, stats.c.grp, stats.c.median, stats.c.mad, stats.c.n)
                .where(stats.c.grp.in_(groups))
                .distinct()
            ).all()
            cohorts = {(m, g): (med, mad, n) for m, g, med, mad, n in found}
            rows += [
                (device, v, ts, *cohorts[(m, g)])
                for device, v, ts, m, g in outside
                if (m, g) in cohorts
            ]
    return {
        device: PeerReading(
            value=float(v), ts=ts, median=float(med), mad=float(m), cohort_size=int(n)
        )
        for device, v, ts, med, m, n in rows
    }


def _middle(
    column: ColumnElement[float], ranked: Any, rank: ColumnElement[int] | None = None
) -> ColumnElement[float]:
    """The median of ``column`` over its cohort: the mean of the one or two middle rows."""
    rank = ranked.c.rn if rank is None else rank
    n = ranked.c.n
    cohort = (ranked.c.model, ranked.c.grp)
    low = func.max(case((rank == (n + 1) // 2, column))).over(partition_by=cohort)
    high = func.max(case((rank == (n + 2) // 2, column))).over(partition_by=cohort)
    return cast(ColumnElement[float], (low + high) / 2.0)


def _far(
    rule: PeerMonitor,
    value: ColumnElement[float],
    median: ColumnElement[float],
    mad: ColumnElement[float],
) -> ColumnElement[bool]:
    """The SQL twin of :func:`forewarn.monitors.evaluate.peer_deviates`."""
    if rule.direction == "below":
        gap: ColumnElement[float] = median - value
    elif rule.direction == "above":
        gap = value - median
    else:
        gap = func.abs(value - median)
    return and_(
        gap > rule.deviations * _SIGMA * mad,
        gap > rule.min_difference,
        gap > rule.min_relative * func.abs(median),
    )
