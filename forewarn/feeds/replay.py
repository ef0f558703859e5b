"""Replaying a historical feed in event time, and measuring what the rules would have done.

A historical export holds each order as it ended. The replay turns every row back into the
sequence of states it went through (placed; approved; handed to the carrier; delivered or
canceled), each at its own timestamp, and feeds them, in time order, through the same
intake, rules and delay cases a live run uses, with a simulated clock. Between events the
clock advances in steps and the deadline sweep runs, so "not handed over within 48 h"
fires at the 48th hour as it would live. Transit times are relearned as the clock passes,
from deliveries known at that moment only: nothing from the future leaks into a decision.

A canceled order's export row has no cancellation time; the replay cancels it at the last
moment the row speaks of.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from forewarn.config.schema import FeedSettings, Settings
from forewarn.feeds.intake import Intake, IntakeCount
from forewarn.feeds.mapping import OrderRecord, RowProblem, map_record
from forewarn.feeds.readers import Format, Numbered, read_records
from forewarn.feeds.watch import OrderWatch
from forewarn.monitors.transit import TransitKey, TransitTimes
from forewarn.ports import DelayCaseRecord, OrderState, TicketStorage
from forewarn.ticketing.delays import DelayCases


@dataclass(frozen=True)
class Snapshot:
    at: datetime
    seq: int
    record: OrderRecord


def snapshots(records: list[OrderRecord]) -> list[Snapshot]:
    """Every record as it was at each of its own timestamps, in time order."""
    out: list[Snapshot] = []
    seq = 0
    for record in records:
        moments = sorted({*record.milestones.values(), *(e.at for e in record.events)})
        if not moments:
            continue
        for i, moment in enumerate(moments):
            final = i == len(moments) - 1
            out.append(Snapshot(moment, seq, record.as_known_at(moment, final)))
            seq += 1
    out.sort(key=lambda s: (s.at, s.seq))
    return out


@dataclass
class ReplayResult:
    started: datetime | None = None
    ended: datetime | None = None
    count: IntakeCount = field(default_factory=IntakeCount)
    snapshots: int = 0
    ticks: int = 0
    """Clock steps that had work to do (the others were jumped over)."""


def replay(
    settings: Settings,
    feed: FeedSettings,
    data: bytes,
    fmt: Format,
    storage: TicketStorage,
    *,
    step: timedelta = timedelta(hours=1),
    until: datetime | None = None,
) -> ReplayResult:
    """Replay ``data`` (a document of ``feed``) into ``storage`` (a
    :class:`~forewarn.store.memory_tickets.MemoryTicketStores` for a report, or a scratch
    SQL store).

    The clock moves in ``step``s: at each tick the snapshots before it are taken in (each
    at its own time), the transit times are relearned every ``delays.stats_interval``, and
    the sweep runs at the tick (orders due, notices whose merge window closed). A tick with
    none of these to do changes nothing, so the clock jumps straight to the next one that
    has: the result is the same as stepping through every tick.
    """
    watch = OrderWatch(settings.delays, DelayCases(settings.delays))
    intake = Intake(settings, watch)
    result = ReplayResult()
    records: list[OrderRecord] = []
    for item in read_records(data, fmt, feed.records_key):
        result.count.rows += 1
        try:
            if not isinstance(item, Numbered):
                raise RowProblem(item.reason)
            records.append(map_record(feed.mapping, item.record, settings.phone_region))
        except RowProblem as exc:
            result.count.quarantined += 1
            if len(result.count.problems) < 10:
                result.count.problems.append(f"line {item.line}: {exc}")
    timeline = snapshots(records)
    result.snapshots = len(timeline)
    if not timeline:
        return result
    origin = _floor(timeline[0].at, step)
    grid = _Grid(origin, step)
    clock = origin
    end = until or (timeline[-1].at + step)
    result.started = clock
    learn_every = settings.delays.stats_interval
    learned_at: datetime | None = None
    i = 0
    while clock <= end:
        tick = clock + step
        result.ticks += 1
        with storage.begin() as stores:
            while i < len(timeline) and timeline[i].at < tick:
                snap = timeline[i]
                if intake.take_record(stores, feed.name, snap.record, snap.at):
                    result.count.accepted += 1
                else:
                    result.count.unchanged += 1
                i += 1
            if learned_at is None or tick - learned_at >= learn_every:
                watch.learn(stores, tick)
                learned_at = tick
        watch.run_due(storage, tick)
        clock = tick
        with storage.begin() as stores:
            notice = stores.cases.next_notice_due()
            check = stores.orders.next_check()
        if i >= len(timeline) and until is None and notice is None:
            break
        # The next tick with work: a snapshot to take, a relearning, an order or a
        # notice due. Ticks before it would change nothing.
        upcoming = [grid.ceil(learned_at + learn_every)]
        if i < len(timeline):
            upcoming.append(grid.floor(timeline[i].at) + step)
        upcoming += [grid.ceil(at) for at in (check, notice) if at is not None]
        clock = max(clock, min(min(upcoming) - step, grid.after(end)))
    result.ended = clock
    return result


@dataclass(frozen=True)
class _Grid:
    """The replay clock's ticks: ``origin + k * step``."""

    origin: datetime
    step: timedelta

    def floor(self, moment: datetime) -> datetime:
        return self.origin + ((moment - self.origin) // self.step) * self.step

    def ceil(self, moment: datetime) -> datetime:
        below = self.floor(moment)
        return below if below == moment else below + self.step

    def after(self, moment: datetime) -> datetime:
        """The first tick later than ``moment``."""
        return self.floor(moment) + self.step


def _floor(moment: datetime, step: timedelta) -> datetime:
    seconds = step.total_seconds()
    epoch = moment.timestamp()
    return datetime.fromtimestamp(epoch - epoch % seconds, moment.tzinfo)


# -- measuring -----------------------------------------------------------------------------


@dataclass
class Report:
    """What the rules did on a replayed feed, counted per order."""

    orders: int = 0
    delivered: int = 0
    canceled: int = 0
    still_open: int = 0
    late: int = 0
    """Delivered after the promised date, or not delivered when the promise passed."""
    late_warned: int = 0
    late_warned_by_promise: int = 0
    lead_days: list[float] = field(default_factory=list)
    """Days between the warning and the promised date, for late orders warned in time."""
    on_time: int = 0
    on_time_warned: int = 0
    cases: int = 0
    orders_with_two_cases: int = 0
    escalated: int = 0
    unreachable: int = 0
    followed_up: int = 0
    resolved_delivered: int = 0
    first_rules: dict[str, int] = field(default_factory=dict)
    transit: list[dict[str, Any]] = field(default_factory=list)

    def lines(self) -> list[str]:
        def pct(part: int, whole: int) -> str:
            return f"{part} ({100 * part / whole:.1f}%)" if whole else f"{part}"

        lead = sorted(self.lead_days)
        out = [
            f"orders measured:              {self.orders} (delivered {self.delivered}, "
            f"canceled {self.canceled}, still open {self.still_open})",
            f"late orders:                  {self.late}",
            f"  warned at all:              {pct(self.late_warned, self.late)}",
            f"  warned by the promised date:{pct(self.late_warned_by_promise, self.late):>1}",
        ]
        if lead:
            quartiles = statistics.quantiles(lead, n=4) if len(lead) > 1 else [lead[0]] * 3
            out.append(
                f"  days of warning before the promise: median {statistics.median(lead):.1f}, "
                f"quartiles {quartiles[0]:.1f}-{quartiles[2]:.1f}, max {lead[-1]:.1f}"
            )
        out += [
            f"on-time orders:               {self.on_time}",
            f"  warned needlessly:          {pct(self.on_time_warned, self.on_time)}",
            f"delay cases:                  {self.cases} "
            f"(orders with two cases: {self.orders_with_two_cases})",
            f"  resolved by delivery:       {self.resolved_delivered}, "
            f"follow-ups queued: {self.followed_up}",
            f"  gone to a person:           {self.escalated}",
            f"  nobody could be told:       {self.unreachable}",
            "cases by the rule that opened them: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.first_rules.items())),
        ]
        return out


def measure(
    orders: Iterable[OrderState],
    cases: Iterable[DelayCaseRecord],
    transit: Mapping[TransitKey, TransitTimes],
    since: datetime | None = None,
) -> Report:
    """Count, per order placed at or after ``since``, what the cases did."""
    report = Report()
    orders = list(orders)
    end = max((o.updated_at for o in orders), default=None)
    by_order: dict[str, list[DelayCaseRecord]] = {}
    for case in sorted(cases, key=lambda c: c.id):
        by_order.setdefault(case.order_id, []).append(case)
    for order in orders:
        placed = order.placed_at
        if since is not None and (placed is None or placed < since):
            continue
        report.orders += 1
        mine = by_order.get(order.id, [])
        first = min(mine, key=lambda c: c.opened_at) if mine else None
        warned_at = min((c.warned_at for c in mine if c.warned_at is not None), default=None)
        if len(mine) > 1:
            report.orders_with_two_cases += 1
        report.cases += len(mine)
        for case in mine:
            report.escalated += case.escalated_at is not None
            report.unreachable += case.notice_status == "no_contact"
            report.followed_up += case.followed_up_at is not None
            report.resolved_delivered += case.resolution == "delivered"
        if first is not None:
            report.first_rules[first.first_rule] = report.first_rules.get(first.first_rule, 0) + 1
        delivered = order.delivered_at
        if order.canceled_at is not None and delivered is None:
            report.canceled += 1
            continue
        promised = order.promised_at
        if delivered is not None:
            report.delivered += 1
        else:
            report.still_open += 1
        if promised is None:
            continue
        late = (delivered is not None and delivered > promised) or (
            delivered is None and end is not None and end > promised
        )
        if late:
            report.late += 1
            if warned_at is not None:
                report.late_warned += 1
                if warned_at <= promised:
                    report.late_warned_by_promise += 1
                    report.lead_days.append((promised - warned_at).total_seconds() / 86400)
        elif delivered is not None:
            report.on_time += 1
            report.on_time_warned += warned_at is not None
    report.transit = [
        {
            "carrier": carrier,
            "region": region,
            "from": start,
            "samples": times.samples,
            "p50_days": round(times.quantile(50) / 3600 / 24, 1),
            "p80_days": round(times.quantile(80) / 3600 / 24, 1),
            "p95_days": round(times.quantile(95) / 3600 / 24, 1),
        }
        for (carrier, region, start), times in sorted(transit.items())
    ]
    return report
