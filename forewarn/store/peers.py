"""Fleet-peer deviation: every device's latest reading against its cohort's median and MAD.

A cohort is the devices of one model at one site (or in one region) with a fresh latest
reading and no firing alert (devices already alarming would drag the baseline towards
themselves). The result holds only the devices that deviate, plus those named in
``include`` (open alerts, so they can resolve): a handful of rows, whatever the fleet.

Two strategies, one answer:

* PostgreSQL: one grouped pass with ``percentile_cont`` for each cohort's median and its
  members gathered into arrays; the MAD and the verdict per member come from unnesting
  each cohort's arrays (LATERAL), and only the devices that deviate leave the database.
* SQLite (the single-process embedded store): one plain scan of the fresh latest readings
  in index order, with median, MAD and the verdict computed in Python per cohort. SQLite
  has no ordered-set aggregates; ranking with window functions sorted every row twice
  (about 2 s per 100 000 devices), a join of cohort statistics back onto the fleet has no
  index to use, while fetching the rows as plain tuples costs one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, Select, and_, func, or_, select, true
from sqlalchemy.orm import Session

from forewarn.config.schema import PeerMonitor
from forewarn.monitors.cohorts import cohort_readings
from forewarn.monitors.trends import PeerReading
from forewarn.store.alerting import LatestReading
from forewarn.store.models import Alert, Device, Site

_Latest = Select[str, float | None, datetime, str, str]
"""device id, value, event time, model, cohort group."""
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
    latest = _latest(rule, now, scope)
    if session.get_bind().dialect.name == "postgresql":
        return _grouped_in_sql(session, rule, latest, include)
    return _grouped_in_python(session, rule, latest, include)


def _latest(rule: PeerMonitor, now: datetime, scope: Sequence[ColumnElement[bool]]) -> _Latest:
    group = Device.site_id if rule.cohort == "site" else func.coalesce(Site.region, "")
    latest: _Latest = (
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
    return latest


def _alarming() -> Select[Any]:
    return select(Alert.subject).where(
        Alert.open_fingerprint.is_not(None),
        or_(Alert.state == "firing", Alert.condition == "firing"),
    )


def _grouped_in_sql(
    session: Session, rule: PeerMonitor, latest: _Latest, include: Sequence[str]
) -> dict[str, PeerReading]:
    # One grouped pass: each cohort's median and its members as arrays; the MAD and the
    # members are unnested per cohort (LATERAL), so no join of cohort statistics back onto
    # the fleet exists for the planner to misjudge (freshly loaded tables have no
    # statistics, and a nested loop over 100 000 rows took seconds).
    fresh = latest.cte("fresh")
    alarming = _alarming()
    baseline = select(fresh).where(fresh.c.device_id.not_in(alarming)).subquery("baseline")
    cohorts = (
        select(
            baseline.c.model,
            baseline.c.grp,
            func.count().label("n"),
            func.percentile_cont(0.5).within_group(baseline.c.value).label("median"),
            func.array_agg(baseline.c.device_id).label("ids"),
            func.array_agg(baseline.c.value).label("vals"),
            func.array_agg(baseline.c.ts).label("tss"),
        )
        .group_by(baseline.c.model, baseline.c.grp)
        .having(func.count() >= rule.min_cohort)
        .cte("cohorts")
    )
    deviations = func.unnest(cohorts.c.vals).table_valued("v").render_derived(name="d")
    mad_of = (
        select(
            func.percentile_cont(0.5)
            .within_group(func.abs(deviations.c.v - cohorts.c.median))
            .label("mad")
        )
        .select_from(deviations)
        .lateral("spread")
    )
    members = (
        func.unnest(cohorts.c.ids, cohorts.c.vals, cohorts.c.tss)
        .table_valued("device_id", "value", "ts")
        .render_derived(name="member")
    )
    median = cohorts.c.median.cast(Float)
    mad = mad_of.c.mad.cast(Float)
    value = members.c.value.cast(Float)
    far = _far(rule, value, median, mad)
    wanted = or_(far, members.c.device_id.in_(list(include))) if include else far
    rows: list[tuple[Any, ...]] = [
        tuple(row)
        for row in session.execute(
            select(members.c.device_id, value, members.c.ts, median, mad, cohorts.c.n)
            .select_from(cohorts)
            .join(mad_of, true())
            .join(members, true())
            .where(wanted)
        )
    ]
    alarmed = [d for d in include if d not in {row[0] for row in rows}]
    if alarmed:
        # Included devices that are alarming are not in the baseline: judge them against
        # their cohort's statistics, looked up by cohort.
        outside = session.execute(
            select(fresh.c.device_id, fresh.c.value, fresh.c.ts, fresh.c.model, fresh.c.grp).where(
                fresh.c.device_id.in_(alarmed), fresh.c.device_id.in_(alarming)
            )
        ).all()
        if outside:
            found = session.execute(
                select(cohorts.c.model, cohorts.c.grp, median, mad, cohorts.c.n)
                .select_from(cohorts)
                .join(mad_of, true())
                .where(cohorts.c.grp.in_(sorted({g for *_, g in outside})))
            ).all()
            stats = {(m, g): (med, spread, n) for m, g, med, spread, n in found}
            rows += [
                (device, v, ts, *stats[(m, g)])
                for device, v, ts, m, g in outside
                if (m, g) in stats
            ]
    return {
        device: PeerReading(
            value=float(v), ts=_aware(ts), median=float(med), mad=float(m), cohort_size=int(n)
        )
        for device, v, ts, med, m, n in rows
    }


def _aware(moment: datetime) -> datetime:
    # Timestamps unnested from an array lose the column type that makes them UTC-aware.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _grouped_in_python(
    session: Session, rule: PeerMonitor, latest: _Latest, include: Sequence[str]
) -> dict[str, PeerReading]:
    alarming = set(session.scalars(_alarming()))
    rows = [
        (device, float(value), ts, model, grp)
        for device, value, ts, model, grp in session.execute(latest)
        if value is not None  # excluded by the query; for the type checker
    ]
    return cohort_readings(rule, rows, alarming, include)


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
