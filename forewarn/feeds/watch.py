"""Running the order rules against the store: on new data and when a deadline comes due.

The pure rules (:mod:`forewarn.monitors.orders`) decide; this module records each rule that
starts or stops holding as an alert row (fingerprint ``order:<rule>:<order>``, one open per
fingerprint, every change an ``alert_events`` row) and hands the verdict to the delay cases,
in the caller's transaction.

Each order carries ``next_check_at``: the next deadline at which its verdict can change with
no new data. The sweep is one indexed query for the orders due, never a loop over all.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.schema import MILESTONES, DelaySettings, OrderRuleSettings
from forewarn.monitors.order_alerts import record_order_alerts
from forewarn.monitors.orders import Finding, OrderFacts, evaluate_order
from forewarn.monitors.transit import TransitBook, TransitTimes, learn_transit, transit_region
from forewarn.store.alerts import SqlAlertStore
from forewarn.store.orders import Order, TransitStat
from forewarn.store.tickets import SqlTicketStores
from forewarn.ticketing.delays import DelayCases

log = logging.getLogger(__name__)

SWEEP_BATCH = 500


def order_facts(order: Order) -> OrderFacts:
    milestones: dict[str, datetime] = {
        m: at for m in MILESTONES if (at := getattr(order, f"{m}_at")) is not None
    }
    return OrderFacts(
        id=order.id,
        milestones=milestones,
        promised=order.promised_at,
        carrier=order.carrier,
        region=order.region,
        canceled_at=order.canceled_at,
        exception_code=order.exception_code,
        exception_at=order.exception_at,
    )


def _version(rule: OrderRuleSettings) -> str:
    return hashlib.sha256(rule.model_dump_json(by_alias=True).encode()).hexdigest()[:12]


class OrderWatch:
    """The configured order rules, the learned transit times and the delay cases."""

    def __init__(self, settings: DelaySettings, cases: DelayCases) -> None:
        self._settings = settings
        self._rules: Sequence[OrderRuleSettings] = settings.rules
        self._versions = {r.id: _version(r) for r in settings.rules}
        self._cases = cases
        self.book = TransitBook()

    @property
    def cases(self) -> DelayCases:
        return self._cases

    def evaluate(self, session: Session, order: Order, now: datetime) -> None:
        """Apply the rules to ``order`` as known at ``now`` and act on the verdict."""
        facts = order_facts(order)
        verdict = evaluate_order(self._rules, facts, self.book, now)
        self._record_alerts(session, order, verdict.findings, now)
        case_check = self._cases.on_verdict(SqlTicketStores(session), order, facts, verdict, now)
        order.status = verdict.status
        checks = [c for c in (verdict.next_check, case_check) if c is not None]
        order.next_check_at = min(checks) if checks else None

    def sweep(self, sessions: sessionmaker[Session], now: datetime) -> int:
        """Evaluate every open order whose deadline has come; returns how many."""
        done = 0
        while True:
            with sessions.begin() as session:
                due = session.scalars(
                    select(Order)
                    .where(Order.status == "open", Order.next_check_at <= now)
                    .order_by(Order.next_check_at)
                    .limit(SWEEP_BATCH)
                ).all()
                for order in due:
                    self.evaluate(session, order, now)
                self._cases.flush_notices(SqlTicketStores(session), now)
            done += len(due)
            if len(due) < SWEEP_BATCH:
                return done

    def _record_alerts(
        self, session: Session, order: Order, findings: Sequence[Finding], now: datetime
    ) -> None:
        case = self._cases.open_case(SqlTicketStores(session), order.id)
        record_order_alerts(
            SqlAlertStore(session),
            order.id,
            order.status,
            findings,
            now,
            self._versions,
            ticket_id=case[0].id if case is not None else None,
        )

    # -- learned transit times ---------------------------------------------------------

    def load_transit(self, session: Session) -> None:
        """Read the learned percentiles from the store (at start-up and after learning)."""
        groups = {
            (s.carrier, s.region, s.from_milestone): TransitTimes(
                samples=s.samples, percentiles=tuple(float(p) for p in s.percentiles)
            )
            for s in session.scalars(select(TransitStat))
        }
        self.book = TransitBook(groups)

    def learn_transit(self, session: Session, now: datetime) -> int:
        """Relearn the transit percentiles from orders delivered in the history window
        (event time: only deliveries known by ``now``); returns the number of deliveries.

        Open orders are then due for a fresh look, since their estimates moved.
        """
        since = now - self._settings.transit_history
        columns = [getattr(Order, f"{m}_at") for m in MILESTONES[:-1]]
        rows = session.execute(
            select(
                Order.carrier, Order.region, Order.promised_at, Order.delivered_at, *columns
            ).where(
                Order.delivered_at.is_not(None),
                Order.delivered_at > since,
                Order.delivered_at <= now,
            )
        ).all()
        samples = []
        for carrier, region, promised, delivered, *stamps in rows:
            group = transit_region(region, stamps[0], promised)
            for milestone, at in zip(MILESTONES[:-1], stamps, strict=True):
                if at is not None and at <= delivered:
                    samples.append((carrier, group, milestone, (delivered - at).total_seconds()))
        learned = learn_transit(samples)
        session.execute(delete(TransitStat))
        for (group_carrier, group_region, start), times in learned.items():
            session.add(
                TransitStat(
                    carrier=group_carrier,
                    region=group_region,
                    from_milestone=start,
                    samples=times.samples,
                    p50_hours=times.quantile(50) / 3600,
                    p80_hours=times.quantile(80) / 3600,
                    p95_hours=times.quantile(95) / 3600,
                    percentiles=list(times.percentiles),
                    learned_at=now,
                )
            )
        session.flush()
        self.book = TransitBook(learned)
        session.execute(
            update(Order)
            .where(Order.status == "open")
            .values(next_check_at=now)
            .execution_options(synchronize_session=False)
        )
        log.info("learned transit times from %d deliveries", len(rows))
        return len(rows)


def stats_due(last: datetime | None, now: datetime, interval: timedelta) -> bool:
    return last is None or now - last >= interval
