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

from sqlalchemy import ColumnElement, and_, func, or_, select
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
    cohort = (baseline.c.model, baseline.c.grp)
    ranked = select(
        baseline.c.model,
        baseline.c.grp,
        baseline.c.value,
        func.row_number().over(partition_by=cohort, order_by=baseline.c.value).label("rn"),
        func.count().over(partition_by=cohort).label("n"),
    ).cte("ranked")
    medians = (
        select(
            ranked.c.model,
            ranked.c.grp,
            func.avg(ranked.c.value).label("median"),
            func.max(ranked.c.n).label("n"),
        )
        .where(
            ranked.c.n >= rule.min_cohort,
            or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == (ranked.c.n + 2) // 2),
        )
        .group_by(ranked.c.model, ranked.c.grp)
        .cte("medians")
    )
    same = and_(medians.c.model == baseline.c.model, medians.c.grp == baseline.c.grp)
    gaps = (
        select(
            baseline.c.model,
            baseline.c.grp,
            func.abs(baseline.c.value - medians.c.median).label("gap"),
        )
        .join(medians, same)
        .cte("gaps")
    )
    gap_cohort = (gaps.c.model, gaps.c.grp)
    ranked_gaps = select(
        gaps.c.model,
        gaps.c.grp,
        gaps.c.gap,
        func.row_number().over(partition_by=gap_cohort, order_by=gaps.c.gap).label("rn"),
        func.count().over(partition_by=gap_cohort).label("n"),
    ).cte("ranked_gaps")
    mads = (
        select(ranked_gaps.c.model, ranked_gaps.c.grp, func.avg(ranked_gaps.c.gap).label("mad"))
        .where(
            or_(
                ranked_gaps.c.rn == (ranked_gaps.c.n + 1) // 2,
                ranked_gaps.c.rn == (ranked_gaps.c.n + 2) // 2,
            )
        )
        .group_by(ranked_gaps.c.model, ranked_gaps.c.grp)
        .cte("mads")
    )
    value, median, mad = fresh.c.value, medians.c.median, mads.c.mad
    if rule.direction == "below":
        gap: ColumnElement[float] = median - value
    elif rule.direction == "above":
        gap = value - median
    else:
        gap = func.abs(value - median)
    far = and_(
        gap > rule.deviations * _SIGMA * mad,
        gap > rule.min_difference,
        gap > rule.min_relative * func.abs(median),
    )
    wanted = or_(far, fresh.c.device_id.in_(list(include))) if include else far
    rows = session.execute(
        select(fresh.c.device_id, fresh.c.value, fresh.c.ts, median, mad, medians.c.n)
        .join(medians, and_(medians.c.model == fresh.c.model, medians.c.grp == fresh.c.grp))
        .join(mads, and_(mads.c.model == fresh.c.model, mads.c.grp == fresh.c.grp))
        .where(wanted)
    ).all()
    return {
        device: PeerReading(
            value=float(v), ts=ts, median=float(med), mad=float(m), cohort_size=int(n)
        )
        for device, v, ts, med, m, n in rows
    }
