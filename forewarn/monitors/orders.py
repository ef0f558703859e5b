"""Order rules, pure: order facts + learned transit times + ``now`` -> a verdict.

No database, no clock. Everything is event time: a milestone stamped after ``now`` is not
known yet, so replaying a historical export with a simulated clock decides exactly what a
live run would have decided at that moment.

Transit times are learned from delivered history as percentiles of "time from milestone M
to delivery", per carrier and region. The estimate for an order still on its way is
conditional on the time it has already spent since its last milestone: a parcel three days
past hand-off is compared with the parcels that took longer than three days, not with all
of them, which is what makes a stuck parcel look at risk before its promise passes.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from forewarn.config.durations import format_duration
from forewarn.config.schema import (
    MILESTONES,
    CarrierExceptionRule,
    MilestoneOverdueRule,
    OrderRuleSettings,
    OrderStatus,
    PromiseAtRiskRule,
    PromisePassedRule,
    Severity,
)
from forewarn.hours import RecurringHours
from forewarn.monitors.transit import (
    TransitBook,
    TransitTimes,
    first_at_risk,
    miss_probability,
    transit_region,
)

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class OrderFacts:
    """What is known about an order, with event times."""

    id: str
    milestones: Mapping[str, datetime]
    """Milestone -> when it happened."""
    promised: datetime | None = None
    carrier: str | None = None
    region: str | None = None
    canceled_at: datetime | None = None
    exception_code: str | None = None
    exception_at: datetime | None = None

    def reached(self, milestone: str, now: datetime) -> datetime | None:
        at = self.milestones.get(milestone)
        return at if at is not None and at <= now else None

    def last_milestone(self, now: datetime) -> tuple[str, datetime] | None:
        """The furthest milestone reached by ``now`` (short of delivery)."""
        for milestone in reversed(MILESTONES[:-1]):
            at = self.reached(milestone, now)
            if at is not None:
                return milestone, at
        return None

    def status(self, now: datetime) -> OrderStatus:
        if self.reached("delivered", now) is not None:
            return "delivered"
        if self.canceled_at is not None and self.canceled_at <= now:
            return "canceled"
        return "open"

    def beyond(self, milestone: str, now: datetime) -> bool:
        """Whether ``milestone`` or any later one has been reached (a feed may skip some)."""
        index = MILESTONES.index(milestone)
        return any(self.reached(m, now) is not None for m in MILESTONES[index:])


@dataclass(frozen=True)
class Finding:
    """One rule that holds for an order."""

    rule_id: str
    kind: str
    severity: Severity
    summary: str
    since: datetime
    """Event time at which the rule began to hold."""
    notify_customer: bool
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OrderVerdict:
    """What the rules say about one order at one moment."""

    status: OrderStatus
    findings: tuple[Finding, ...] = ()
    estimate: datetime | None = None
    """New expected delivery, when the transit history allows one."""
    next_check: datetime | None = None
    """When the verdict can change without new data (a deadline); ``None``: only new data."""


_RANK: dict[str, int] = {m: i for i, m in enumerate(MILESTONES)}
_EN_ROUTE = tuple(reversed(MILESTONES[:-1]))


@dataclass(frozen=True, slots=True)
class _Known:
    """An order as known at ``now``, worked out once for every rule."""

    order: OrderFacts
    now: datetime
    reached: dict[str, datetime]
    last: tuple[str, datetime] | None
    """The furthest milestone reached (short of delivery)."""
    region: str | None
    """The order's transit group region (:func:`transit_region`)."""

    @classmethod
    def of(cls, order: OrderFacts, now: datetime) -> _Known:
        reached = {m: at for m, at in order.milestones.items() if at <= now}
        last = next(((m, reached[m]) for m in _EN_ROUTE if m in reached), None)
        region = transit_region(order.region, order.milestones.get("placed"), order.promised)
        return cls(order, now, reached, last, region)

    def status(self) -> OrderStatus:
        if "delivered" in self.reached:
            return "delivered"
        canceled = self.order.canceled_at
        return "canceled" if canceled is not None and canceled <= self.now else "open"

    def beyond(self, milestone: str) -> bool:
        rank = _RANK[milestone]
        return any(_RANK.get(m, -1) >= rank for m in self.reached)


def evaluate_order(
    rules: Sequence[OrderRuleSettings], order: OrderFacts, book: TransitBook, now: datetime
) -> OrderVerdict:
    """Apply every rule in scope to ``order`` as known at ``now``."""
    known = _Known.of(order, now)
    status = known.status()
    if status != "open":
        return OrderVerdict(status=status)
    findings: list[Finding] = []
    checks: list[datetime] = []
    estimate: datetime | None = None
    for rule in rules:
        if not _in_scope(rule, order):
            continue
        if isinstance(rule, MilestoneOverdueRule):
            found, check = _milestone_overdue(rule, known)
        elif isinstance(rule, PromisePassedRule):
            found, check = _promise_passed(rule, order, now)
        elif isinstance(rule, CarrierExceptionRule):
            found, check = _carrier_exception(rule, order, now), None
        else:
            found, check, rule_estimate = _promise_at_risk(rule, known, book)
            estimate = estimate or rule_estimate
        if found is not None:
            findings.append(found)
        if check is not None:
            checks.append(check)
    if estimate is None:
        estimate = _estimate(known, book)
    return OrderVerdict(
        status=status,
        findings=tuple(findings),
        estimate=estimate,
        next_check=min(checks) if checks else None,
    )


def estimate_delivery(
    order: OrderFacts, book: TransitBook, now: datetime, percentile: int = 80, min_samples: int = 30
) -> datetime | None:
    """When the order will most likely be delivered by (the ``percentile``-th learned time
    from its last milestone, given the time already spent), or ``None`` without history."""
    return _estimate(_Known.of(order, now), book, percentile, min_samples)


def _estimate(
    known: _Known, book: TransitBook, percentile: int = 80, min_samples: int = 30
) -> datetime | None:
    if known.last is None:
        return None
    milestone, since = known.last
    found = book.lookup(known.order.carrier, known.region, milestone, min_samples)
    if found is None:
        return None
    total = found[1].remaining_quantile((known.now - since).total_seconds(), percentile)
    if total is None:
        return None
    return max(since + timedelta(seconds=total), known.now)


def _in_scope(rule: OrderRuleSettings, order: OrderFacts) -> bool:
    scope = rule.applies_to
    return (not scope.carriers or order.carrier in scope.carriers) and (
        not scope.regions or order.region in scope.regions
    )


def _milestone_overdue(
    rule: MilestoneOverdueRule, known: _Known
) -> tuple[Finding | None, datetime | None]:
    start = known.reached.get(rule.after)
    if start is None or known.beyond(rule.milestone):
        return None, None
    due = start + rule.within
    if known.now < due:
        return None, due
    words = rule.milestone.replace("_", " ")
    return (
        Finding(
            rule_id=rule.id,
            kind=rule.kind,
            severity=rule.severity,
            summary=f"not {words} within {format_duration(rule.within)} of {rule.after}",
            since=due,
            notify_customer=rule.notify_customer,
            evidence={"after": rule.after, "after_at": start.isoformat(), "due": due.isoformat()},
        ),
        None,
    )


def _promise_passed(
    rule: PromisePassedRule, order: OrderFacts, now: datetime
) -> tuple[Finding | None, datetime | None]:
    if order.promised is None:
        return None, None
    due = order.promised + rule.grace
    if now < due:
        return None, due
    return (
        Finding(
            rule_id=rule.id,
            kind=rule.kind,
            severity=rule.severity,
            summary="promised delivery date passed without delivery",
            since=due,
            notify_customer=rule.notify_customer,
            evidence={"promised": order.promised.isoformat()},
        ),
        None,
    )


def _carrier_exception(
    rule: CarrierExceptionRule, order: OrderFacts, now: datetime
) -> Finding | None:
    code, at = order.exception_code, order.exception_at
    if not code or at is None or at > now or (rule.codes and code not in rule.codes):
        return None
    meaning = rule.codes.get(code, "")
    return Finding(
        rule_id=rule.id,
        kind=rule.kind,
        severity=rule.severity,
        summary=f"carrier exception {code}" + (f": {meaning}" if meaning else ""),
        since=at,
        notify_customer=rule.notify_customer,
        evidence={"code": code, "at": at.isoformat()},
    )


def _promise_at_risk(
    rule: PromiseAtRiskRule, known: _Known, book: TransitBook
) -> tuple[Finding | None, datetime | None, datetime | None]:
    order, now, last = known.order, known.now, known.last
    if order.promised is None or last is None:
        return None, None, None
    milestone, since = last
    found = book.lookup(order.carrier, known.region, milestone, rule.min_samples)
    if found is None:
        return None, None, None
    key, times = found
    limit = order.promised + rule.margin
    elapsed = (now - since).total_seconds()
    total = times.remaining_quantile(elapsed, rule.percentile)
    estimate = None if total is None else max(since + timedelta(seconds=total), now)
    risk = miss_probability(times, elapsed, (limit - since).total_seconds())
    if rule.probability is not None:
        if risk < rule.probability:
            return None, first_at_risk(times, since, limit, elapsed, rule.probability), estimate
    elif estimate is not None and estimate <= limit:
        return None, _first_at_risk(times, since, limit, elapsed, rule.percentile), estimate
    evidence = {
        "from": milestone,
        "from_at": since.isoformat(),
        "group": {"carrier": key[0], "region": key[1], "samples": times.samples},
        "percentile": rule.percentile,
        "probability": round(risk, 3),
        "estimate": estimate.isoformat() if estimate else None,
        "promised": order.promised.isoformat(),
    }
    summary = (
        f"{risk:.0%} likely to miss the promised {order.promised:%Y-%m-%d}"
        if rule.probability is not None
        else f"p{rule.percentile} delivery estimate {estimate:%Y-%m-%d} is after the promised "
        f"{order.promised:%Y-%m-%d}"
        if estimate is not None
        else f"already longer since {milestone.replace('_', ' ')} than nearly every delivery"
    )
    finding = Finding(
        rule_id=rule.id,
        kind=rule.kind,
        severity=rule.severity,
        summary=summary,
        since=now,
        notify_customer=rule.notify_customer,
        evidence=evidence,
    )
    return finding, None, estimate


def _first_at_risk(
    times: TransitTimes, since: datetime, limit: datetime, elapsed: float, q: int
) -> datetime | None:
    """The first moment the estimate will pass ``limit`` if nothing new is heard.

    The conditional estimate only changes when the elapsed time crosses one of the learned
    percentiles, so those crossings are the only moments worth checking; and it only grows
    as the elapsed time does (faster deliveries drop out), so the first crossing that
    passes ``limit`` is found by bisection.
    """
    points = times.percentiles
    totals = times.totals_past(q)

    def late(index: int) -> bool:
        # From ``points[index]`` on, the orders that took that long or less no longer count.
        total = totals[index]
        return total is None or since + timedelta(seconds=total) > limit

    low, high = bisect.bisect_right(points, elapsed), len(points)
    if low == high or not late(high - 1):
        return None
    while low < high:
        middle = (low + high) // 2
        if late(middle):
            high = middle
        else:
            low = middle + 1
    at = since + timedelta(seconds=points[low])
    if (at - since).total_seconds() < points[low]:
        # Rounded down to the microsecond, the moment would fall just short of the
        # crossing: judged then, the order is not late yet and no later check is set.
        at += timedelta(microseconds=1)
    return at


@dataclass(frozen=True)
class WorkingCalendar:
    """Working days in one time zone, for "not cleared by the next working day"."""

    timezone: str = "UTC"
    working_days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    holidays: frozenset[date] = frozenset()

    def is_working_day(self, day: date) -> bool:
        return self._days.starts_on(day)

    def end_of_next_working_day(self, moment: datetime) -> datetime:
        """The end of the first working day after the (local) day of ``moment``."""
        day = moment.astimezone(self._days.zone).date() + timedelta(days=1)
        found = self._days.first_from(day, 366)
        # No working day in a year (an empty list): never, in practice.
        return found[1] if found else self._days.occurrence(day + timedelta(days=366))[1]

    @property
    def _days(self) -> RecurringHours:
        # Whole local days (midnight to midnight, DST-safe) on the working weekdays.
        return RecurringHours.of(time(0), time(0), self.timezone, self.working_days, self.holidays)


def needs_person(
    order: OrderFacts,
    calendar: WorkingCalendar,
    escalate_after_promise: timedelta,
    now: datetime,
) -> tuple[str | None, datetime | None]:
    """Why an open case can no longer be left to resolve itself (or ``None``), and when
    to look again if nothing changes."""
    if order.status(now) != "open":
        return None, None
    checks = []
    if order.exception_code and order.exception_at is not None and order.exception_at <= now:
        due = calendar.end_of_next_working_day(order.exception_at)
        if now >= due:
            return (
                f"carrier exception {order.exception_code} not cleared by the next working day",
                None,
            )
        checks.append(due)
    if order.promised is not None:
        due = order.promised + escalate_after_promise
        if now >= due:
            return (
                f"still not delivered {format_duration(escalate_after_promise)} after the promise",
                None,
            )
        checks.append(due)
    return None, min(checks) if checks else None
