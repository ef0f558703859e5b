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
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.schema import MILESTONES, DelaySettings, OrderRuleSettings
from forewarn.monitors.order_alerts import record_order_alerts
from forewarn.monitors.orders import OrderFacts, evaluate_order
from forewarn.monitors.transit import TransitBook, learn_transit, transit_region
from forewarn.ports import OrderState, TicketStorage, TicketStores
from forewarn.store.tickets import SqlTicketStorage, SqlTicketStores
from forewarn.ticketing.delays import DelayCases

log = logging.getLogger(__name__)

SWEEP_BATCH = 500


def order_facts(order: OrderState) -> OrderFacts:
    return OrderFacts(
        id=order.id,
        milestones=order.milestones,
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

    def evaluate(self, stores: TicketStores, order: OrderState, now: datetime) -> OrderState:
        """Apply the rules to ``order`` as known at ``now``, act on the verdict (alerts,
        the delay case) and return the order with its new status and next check (for the
        caller to save)."""
        facts = order_facts(order)
        verdict = evaluate_order(self._rules, facts, self.book, now)
        case = self._cases.open_case(stores, order.id)
        record_order_alerts(
            stores.alerts,
            order.id,
            order.status,
            verdict.findings,
            now,
            self._versions,
            ticket_id=case[0].id if case is not None else None,
        )
        case_check = self._cases.on_verdict(stores, order, facts, verdict, now)
        checks = [c for c in (verdict.next_check, case_check) if c is not None]
        return replace(order, status=verdict.status, next_check_at=min(checks) if checks else None)

    def sweep(self, sessions: sessionmaker[Session], now: datetime) -> int:
        """Evaluate every open order whose deadline has come; returns how many."""
        return self.run_due(SqlTicketStorage(sessions), now)

    def run_due(self, storage: TicketStorage, now: datetime) -> int:
        """:meth:`sweep` over any storage: the due orders in batches, each batch in its own
        unit of work with the notices whose merge window closed."""
        done = 0
        while True:
            with storage.begin() as stores:
                due = stores.orders.due(now, SWEEP_BATCH)
                for order in due:
                    stores.orders.save(self.evaluate(stores, order, now))
                self._cases.flush_notices(stores, now)
            done += len(due)
            if len(due) < SWEEP_BATCH:
                return done

    # -- learned transit times ---------------------------------------------------------

    def load_transit(self, session: Session) -> None:
        """Read the learned percentiles from the store (at start-up and after learning)."""
        self.book = TransitBook(SqlTicketStores(session).orders.transit())

    def learn_transit(self, session: Session, now: datetime) -> int:
        """:meth:`learn` in ``session``'s transaction."""
        return self.learn(SqlTicketStores(session), now)

    def learn(self, stores: TicketStores, now: datetime) -> int:
        """Relearn the transit percentiles from orders delivered in the history window
        (event time: only deliveries known by ``now``); returns the number of deliveries.

        Open orders are then due for a fresh look, since their estimates moved.
        """
        delivered = stores.orders.deliveries(now - self._settings.transit_history, now)
        samples = []
        for order in delivered:
            at_door = order.milestones["delivered"]
            group = transit_region(order.region, order.placed_at, order.promised_at)
            for milestone in MILESTONES[:-1]:
                at = order.milestones.get(milestone)
                if at is not None and at <= at_door:
                    seconds = (at_door - at).total_seconds()
                    samples.append((order.carrier, group, milestone, seconds))
        learned = learn_transit(samples)
        stores.orders.save_transit(learned, now)
        self.book = TransitBook(learned)
        stores.orders.recheck_open(now)
        log.info("learned transit times from %d deliveries", len(delivered))
        return len(delivered)


def stats_due(last: datetime | None, now: datetime, interval: timedelta) -> bool:
    return last is None or now - last >= interval
