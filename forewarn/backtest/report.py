"""What a backtest tells ops, computed from two simulated runs (pure: data in, data out).

:func:`summarize` turns one run (:class:`~forewarn.backtest.live.Outcome`) into the counts
ops read: alerts, tickets and technician hours, messages by channel with their cost,
the most messages one customer got in any 24 hours and in any 7 days, flapping
episodes. :func:`diff_alerts` pairs the draft's alerts with the current rules' (same rule
and device, overlapping in time) to list those that appear and disappear, and
:func:`closure_match` compares the draft's tickets with the real ones of the period:
how many would have been real faults, how many no-fault-found.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from forewarn.backtest.live import MessageOutcome, Outcome
from forewarn.config.schema import CustomerSettings
from forewarn.notifier.policy import deliver_after
from forewarn.notifier.render import sms_segments
from forewarn.ports import AlertRecord
from forewarn.store.history import PastTicket

SENT = ("sent", "delivered", "undelivered", "bounced")
"""Statuses of a message that left (a dry run ends at ``sent``)."""
REAL_FAULT = ("fixed", "parts_needed", "customer_cause")
NO_FAULT = ("no_fault_found",)
MATCH_WINDOW = timedelta(hours=24)
"""A would-be ticket matches a real one on the same device opened this close to it."""
LISTED = 200
"""Alerts listed by name in a diff (the counts are always complete)."""


@dataclass(frozen=True)
class Prices:
    currency: str
    sms_segment: float
    email: float


@dataclass(frozen=True)
class CustomerPeak:
    """The most messages one customer got in any window of the given length."""

    customer_id: str | None
    messages: int
    window_start: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer": self.customer_id,
            "messages": self.messages,
            "from": _iso(self.window_start),
        }


@dataclass(frozen=True)
class Summary:
    """One rule set's outcome over the period, as counts (see ``as_dict`` for the keys)."""

    alerts: int
    alerts_by_rule: Mapping[str, int]
    held: int
    flapping_episodes: int
    tickets: int
    tickets_by_rule: Mapping[str, int]
    reopened: int
    auto_closed: int
    escalations: int
    max_tickets_per_day: int
    technician_hours: float
    messages: Mapping[str, int]
    messages_by_recipient: Mapping[str, int]
    messages_by_event: Mapping[str, int]
    sms_segments: int
    cost: float
    cost_by_channel: Mapping[str, float]
    merged: int
    dropped: int
    """Waiting notices dropped because their ticket moved on (superseded)."""
    quiet_hours_held: int
    waiting_at_end: int
    busiest_day: CustomerPeak
    busiest_week: CustomerPeak

    def as_dict(self) -> dict[str, Any]:
        return {
            "alerts": self.alerts,
            "alerts_by_rule": dict(sorted(self.alerts_by_rule.items())),
            "held": self.held,
            "flapping_episodes": self.flapping_episodes,
            "tickets": self.tickets,
            "tickets_by_rule": dict(sorted(self.tickets_by_rule.items())),
            "reopened": self.reopened,
            "auto_closed": self.auto_closed,
            "escalations": self.escalations,
            "max_tickets_per_day": self.max_tickets_per_day,
            "technician_hours": round(self.technician_hours, 2),
            "messages": dict(sorted(self.messages.items())),
            "messages_total": sum(self.messages.values()),
            "messages_by_recipient": dict(sorted(self.messages_by_recipient.items())),
            "messages_by_event": dict(sorted(self.messages_by_event.items())),
            "sms_segments": self.sms_segments,
            "cost": round(self.cost, 4),
            "cost_by_channel": {k: round(v, 4) for k, v in sorted(self.cost_by_channel.items())},
            "merged": self.merged,
            "dropped": self.dropped,
            "quiet_hours_held": self.quiet_hours_held,
            "waiting_at_end": self.waiting_at_end,
            "max_per_customer_day": self.busiest_day.as_dict(),
            "max_per_customer_week": self.busiest_week.as_dict(),
        }


def summarize(
    outcome: Outcome,
    prices: Prices,
    *,
    devices: Collection[str] | None = None,
    customers: Mapping[str, CustomerSettings] | None = None,
) -> Summary:
    """Count ``outcome`` for the devices in scope (all when ``devices`` is None);
    ``customers`` (by id) tell which messages waited for the end of quiet hours."""
    alerts = [a for a in outcome.alerts if devices is None or a.subject in devices]
    fired = [a for a in alerts if a.firing_since is not None]
    ids = {a.id for a in alerts}
    flapping = sum(
        1 for e in outcome.alert_events if e.to_state == "flapping" and e.alert_id in ids
    )
    tickets = [t for t in outcome.tickets if devices is None or t.device_id in devices]
    ticket_ids = {t.id for t in tickets}
    per_day = Counter(t.opened_at.date() for t in tickets)
    messages = [
        m
        for m in outcome.messages
        if devices is None or m.ticket_id is None or m.ticket_id in ticket_ids
    ]
    sent = [m for m in messages if m.status in SENT]
    by_channel = Counter(m.channel for m in sent)
    segments = sum(sms_segments(m.body or "") for m in sent if m.channel == "sms")
    cost_by_channel = {
        channel: (segments * prices.sms_segment if channel == "sms" else n * prices.email)
        for channel, n in by_channel.items()
        if channel in ("sms", "email")
    }
    to_customers = [m for m in sent if m.recipient_role == "customer" and m.sent_at is not None]
    return Summary(
        alerts=len(fired),
        alerts_by_rule=Counter(a.rule_id for a in fired),
        held=sum(1 for a in fired if a.notified_at is None),
        flapping_episodes=flapping,
        tickets=len(tickets),
        tickets_by_rule=Counter(t.rule_id or "" for t in tickets),
        reopened=sum(t.repeat_visits for t in tickets),
        auto_closed=sum(1 for t in tickets if t.auto_closed),
        escalations=sum(t.escalations for t in tickets),
        max_tickets_per_day=max(per_day.values(), default=0),
        technician_hours=sum(t.visits for t in tickets) * outcome.visit.total_seconds() / 3600,
        messages=by_channel,
        messages_by_recipient=Counter(m.recipient_role for m in sent),
        messages_by_event=Counter(m.event for m in sent),
        sms_segments=segments,
        cost=sum(cost_by_channel.values()),
        cost_by_channel=cost_by_channel,
        merged=sum(1 for m in messages if m.status == "merged"),
        dropped=sum(1 for m in messages if m.status == "superseded"),
        quiet_hours_held=sum(1 for m in sent if _quiet(m, customers or {})),
        waiting_at_end=sum(1 for m in messages if m.status in ("queued", "sending")),
        busiest_day=busiest(to_customers, timedelta(days=1)),
        busiest_week=busiest(to_customers, timedelta(days=7)),
    )


def _quiet(message: MessageOutcome, customers: Mapping[str, CustomerSettings]) -> bool:
    """Whether the message was queued inside its customer's quiet hours (and waited)."""
    if message.recipient_role != "customer" or message.critical:
        return False
    customer = customers.get(message.recipient_id)
    if customer is None or customer.quiet_hours is None:
        return False
    after = deliver_after(
        message.created_at, customer.timezone, customer.quiet_hours, critical=False
    )
    return after > message.created_at


def busiest(messages: Iterable[MessageOutcome], window: timedelta) -> CustomerPeak:
    """The customer with the most messages sent within any ``window`` (rolling)."""
    by_customer: dict[str, list[datetime]] = {}
    for m in messages:
        if m.sent_at is not None:
            by_customer.setdefault(m.recipient_id, []).append(m.sent_at)
    best = CustomerPeak(None, 0, None)
    for customer, times in sorted(by_customer.items()):
        times.sort()
        for i, start in enumerate(times):
            count = bisect.bisect_left(times, start + window, lo=i) - i
            if count > best.messages:
                best = CustomerPeak(customer, count, start)
    return best


@dataclass(frozen=True)
class AlertChange:
    """An alert that fires under one rule set and not the other."""

    rule_id: str
    subject: str
    severity: str
    firing_since: datetime
    resolved_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id,
            "device": self.subject,
            "severity": self.severity,
            "from": _iso(self.firing_since),
            "until": _iso(self.resolved_at),
        }


@dataclass(frozen=True)
class AlertDiff:
    appear: tuple[AlertChange, ...]
    disappear: tuple[AlertChange, ...]
    unchanged: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "appear_count": len(self.appear),
            "disappear_count": len(self.disappear),
            "unchanged": self.unchanged,
            "appear": [a.as_dict() for a in self.appear[:LISTED]],
            "disappear": [a.as_dict() for a in self.disappear[:LISTED]],
        }


def diff_alerts(
    current: Sequence[AlertRecord],
    draft: Sequence[AlertRecord],
    end: datetime,
    devices: Collection[str] | None = None,
) -> AlertDiff:
    """Alerts that fire under the draft with no overlapping alert of the same rule on the
    same device under the current rules (appear), and the other way round (disappear).
    An alert still open at the end of the period runs to ``end``."""

    def intervals(alerts: Sequence[AlertRecord]) -> dict[tuple[str, str], list[AlertRecord]]:
        found: dict[tuple[str, str], list[AlertRecord]] = {}
        for a in alerts:
            if a.firing_since is None or (devices is not None and a.subject not in devices):
                continue
            found.setdefault((a.rule_id, a.subject), []).append(a)
        return found

    before, after = intervals(current), intervals(draft)

    def unmatched(
        mine: dict[tuple[str, str], list[AlertRecord]],
        theirs: dict[tuple[str, str], list[AlertRecord]],
    ) -> list[AlertChange]:
        changes = []
        for key, alerts in mine.items():
            others = theirs.get(key, [])
            for a in alerts:
                if not any(_overlap(a, o, end) for o in others):
                    assert a.firing_since is not None
                    changes.append(
                        AlertChange(a.rule_id, a.subject, a.severity, a.firing_since, a.resolved_at)
                    )
        return sorted(changes, key=lambda c: (c.firing_since, c.rule_id, c.subject))

    appear = unmatched(after, before)
    disappear = unmatched(before, after)
    total = sum(len(v) for v in after.values())
    return AlertDiff(tuple(appear), tuple(disappear), total - len(appear))


def _overlap(a: AlertRecord, b: AlertRecord, end: datetime) -> bool:
    assert a.firing_since is not None
    assert b.firing_since is not None
    return a.firing_since <= (b.resolved_at or end) and b.firing_since <= (a.resolved_at or end)


@dataclass(frozen=True)
class ClosureMatch:
    """The draft's tickets against the real tickets of the period and how they ended."""

    real_fault: int
    no_fault: int
    no_visit: int
    """Matched a real ticket closed without a visit (cleared before it, cancelled)."""
    unmatched: int
    """No real ticket on that device near that time: history cannot say."""
    real_tickets: int
    """Real tickets of the period with a closure code (the evidence available)."""

    def as_dict(self) -> dict[str, Any]:
        judged = self.real_fault + self.no_fault
        return {
            "real_fault": self.real_fault,
            "no_fault_found": self.no_fault,
            "no_visit": self.no_visit,
            "unmatched": self.unmatched,
            "real_tickets_with_code": self.real_tickets,
            "real_fault_share": round(self.real_fault / judged, 4) if judged else None,
            "no_fault_share": round(self.no_fault / judged, 4) if judged else None,
        }


def closure_match(
    outcome: Outcome, past: Sequence[PastTicket], devices: Collection[str] | None = None
) -> ClosureMatch | None:
    """Match each would-be ticket (on ``devices``) to a real ticket on the same device
    opened within :data:`MATCH_WINDOW` of it (the nearest); None when history has no
    closure codes."""
    coded = [p for p in past if p.closure_code is not None]
    if not coded:
        return None
    by_device: dict[str, list[PastTicket]] = {}
    for p in coded:
        by_device.setdefault(p.device_id, []).append(p)
    counts = Counter[str]()
    for ticket in outcome.tickets:
        if devices is not None and ticket.device_id not in devices:
            continue
        candidates = [
            p
            for p in by_device.get(ticket.device_id or "", [])
            if abs(p.opened_at - ticket.opened_at) <= MATCH_WINDOW
        ]
        if not candidates:
            counts["unmatched"] += 1
            continue
        nearest = min(candidates, key=lambda p: abs(p.opened_at - ticket.opened_at))
        if nearest.closure_code in REAL_FAULT:
            counts["real"] += 1
        elif nearest.closure_code in NO_FAULT:
            counts["nff"] += 1
        else:
            counts["no_visit"] += 1
    return ClosureMatch(
        counts["real"], counts["nff"], counts["no_visit"], counts["unmatched"], len(coded)
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
