"""The probability that an order misses its promise, and what warning at a probability
would have done on a history (pure).

The probability comes from the learned transit times (:mod:`forewarn.monitors.transit`)
of the order's group (carrier, region, the furthest milestone reached): among the
deliveries that had already taken as long as this order has since that milestone, the
share that took longer than the time left to the promise. It grows as the order waits
and falls when a milestone is reached.

The trade-off table replays each delivered order of a history hour by hour: at each
probability threshold, when would it first have been warned, and was it late? So ops can
choose the thresholds of their ``promise_at_risk`` rules from their own orders.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from forewarn.config.schema import MILESTONES
from forewarn.monitors.orders import OrderFacts
from forewarn.monitors.transit import (
    TransitBook,
    learn_transit,
    miss_probability,
    transit_region,
)

THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9)


@dataclass(frozen=True)
class Risk:
    probability: float
    milestone: str
    since: datetime
    group: tuple[str, str, str]
    samples: int


def order_risk(
    order: OrderFacts,
    book: TransitBook,
    now: datetime,
    *,
    margin: timedelta = timedelta(0),
    min_samples: int = 30,
) -> Risk | None:
    """The order's risk of being delivered after ``promised + margin``, as known at
    ``now``; None without a promise, a milestone or learned times for its group."""
    last = order.last_milestone(now)
    if order.promised is None or last is None:
        return None
    milestone, since = last
    region = transit_region(order.region, order.milestones.get("placed"), order.promised)
    found = book.lookup(order.carrier, region, milestone, min_samples)
    if found is None:
        return None
    key, times = found
    elapsed = (now - since).total_seconds()
    allowed = (order.promised + margin - since).total_seconds()
    return Risk(miss_probability(times, elapsed, allowed), milestone, since, key, times.samples)


def learn_book(orders: Iterable[OrderFacts], until: datetime) -> TransitBook:
    """Transit times learned from the orders delivered by ``until`` (as the live watch
    learns them from the store)."""
    samples = []
    for order in orders:
        delivered = order.milestones.get("delivered")
        if delivered is None or delivered > until:
            continue
        group = transit_region(order.region, order.milestones.get("placed"), order.promised)
        for milestone in MILESTONES[:-1]:
            at = order.milestones.get(milestone)
            if at is not None and at <= delivered:
                samples.append((order.carrier, group, milestone, (delivered - at).total_seconds()))
    return TransitBook(learn_transit(samples))


@dataclass(frozen=True)
class TradeoffRow:
    threshold: float
    late_warned_by_promise: float
    """Share of late orders warned no later than the promised moment."""
    on_time_warned: float
    """Share of on-time orders warned (needlessly)."""
    median_lead_days: float | None
    """Median time between the warning and the promise, late orders warned by it."""


@dataclass(frozen=True)
class Tradeoff:
    orders: int
    late: int
    on_time: int
    learned_from: int
    rows: tuple[TradeoffRow, ...] = field(default_factory=tuple)

    def lines(self) -> list[str]:
        """The table as ``forewarn feeds report`` prints it."""
        out = [
            f"delay-risk trade-off over {self.orders} delivered orders ({self.late} late, "
            f"{self.on_time} on time), transit times learned from {self.learned_from} "
            "earlier deliveries:",
            "  warn at risk >=   late warned by promise   on-time warned   median lead (days)",
        ]
        for row in self.rows:
            lead = "-" if row.median_lead_days is None else f"{row.median_lead_days:.1f}"
            out.append(
                f"  {row.threshold:>13.0%}   {row.late_warned_by_promise:>22.1%}   "
                f"{row.on_time_warned:>14.1%}   {lead:>18}"
            )
        return out

    def table(self) -> str:
        return "\n".join(self.lines())

    def as_dict(self) -> dict[str, object]:
        return {
            "orders": self.orders,
            "late": self.late,
            "on_time": self.on_time,
            "learned_from": self.learned_from,
            "rows": [
                {
                    "threshold": r.threshold,
                    "late_warned_by_promise": round(r.late_warned_by_promise, 4),
                    "on_time_warned": round(r.on_time_warned, 4),
                    "median_lead_days": None
                    if r.median_lead_days is None
                    else round(r.median_lead_days, 2),
                }
                for r in self.rows
            ],
        }


def tradeoff(
    orders: Sequence[OrderFacts],
    *,
    learn_share: float = 0.5,
    step: timedelta = timedelta(hours=1),
    margin: timedelta = timedelta(0),
    min_samples: int = 30,
    thresholds: Sequence[float] = THRESHOLDS,
) -> Tradeoff:
    """Warn-at-probability outcomes on the newer ``1 - learn_share`` of the delivered
    orders (by placing time), with transit times learned from deliveries before the first
    of them: nothing an order is judged by was learned from its own outcome."""
    delivered = sorted(
        (
            o
            for o in orders
            if o.promised is not None
            and "placed" in o.milestones
            and "delivered" in o.milestones
            and o.canceled_at is None
        ),
        key=lambda o: o.milestones["placed"],
    )
    if not delivered:
        return Tradeoff(0, 0, 0, 0)
    split = delivered[min(len(delivered) - 1, int(len(delivered) * learn_share))].milestones[
        "placed"
    ]
    book = learn_book(delivered, split)
    learned_from = sum(1 for o in delivered if o.milestones["delivered"] <= split)
    judged = [o for o in delivered if o.milestones["placed"] >= split]
    first_warned: dict[float, list[datetime | None]] = {t: [] for t in thresholds}
    late_flags = []
    for order in judged:
        assert order.promised is not None
        late_flags.append(order.milestones["delivered"] > order.promised)
        series = _risk_series(order, book, step, margin, min_samples)
        for threshold in thresholds:
            first_warned[threshold].append(next((at for at, p in series if p >= threshold), None))
    late = sum(late_flags)
    on_time = len(judged) - late
    rows = []
    for threshold in thresholds:
        by_promise = 0
        needless = 0
        leads = []
        for order, is_late, warned in zip(judged, late_flags, first_warned[threshold], strict=True):
            if warned is None:
                continue
            assert order.promised is not None
            if is_late and warned <= order.promised:
                by_promise += 1
                leads.append((order.promised - warned) / timedelta(days=1))
            elif not is_late:
                needless += 1
        rows.append(
            TradeoffRow(
                threshold,
                by_promise / late if late else 0.0,
                needless / on_time if on_time else 0.0,
                statistics.median(leads) if leads else None,
            )
        )
    return Tradeoff(len(judged), late, on_time, learned_from, tuple(rows))


def _risk_series(
    order: OrderFacts, book: TransitBook, step: timedelta, margin: timedelta, min_samples: int
) -> list[tuple[datetime, float]]:
    """The order's risk at every ``step`` and at each milestone, until it was delivered or
    its promise passed."""
    assert order.promised is not None
    start = order.milestones["placed"]
    end = min(order.milestones["delivered"], order.promised + margin)
    moments = {m for m in order.milestones.values() if start <= m < end}
    at = start
    while at < end:
        moments.add(at)
        at += step
    series = []
    for moment in sorted(moments):
        risk = order_risk(order, book, moment, margin=margin, min_samples=min_samples)
        if risk is not None:
            series.append((moment, risk.probability))
    return series
