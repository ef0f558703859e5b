"""Delay cases: one ``delay`` ticket per late order, its customer notices, its end.

* A case opens when an order rule first holds for an order, and stays the one case of
  that order (``tickets.open_fingerprint = delay:<order>``, unique) until the order is
  delivered or canceled; further rules are added to it as reasons.
* Customer notices wait for a short merge window keyed by customer: every late order of
  one customer found within the window goes out as one message, and so does the later
  "delivered, sorry for the wait". A notice still waiting when the order arrives is
  dropped (the customer never had to know).
* With no customer, or no usable phone or email, the case still opens and records that
  nobody could be told (``notice_status = no_contact``).
* A case that will not resolve itself (a carrier exception not cleared by the end of the
  next working day, or no delivery long after the promise) goes to a person: the ticket
  state machine's ``escalate`` (status ``escalated``, a ``queued_for_dispatcher`` event),
  which the dispatcher queue lists. The person resolves, cancels or closes it through the
  ticket commands like any ticket (:func:`settled_by_person` then ends the case), and the
  order rules do not open another case for that order.

Everything happens in the caller's transaction, ticket events and outbox rows together.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forewarn.config.schema import DelaySettings
from forewarn.monitors.orders import (
    Finding,
    OrderFacts,
    OrderVerdict,
    WorkingCalendar,
    needs_person,
)
from forewarn.notifier.outbox import customer_recipient, notify
from forewarn.store.models import Customer, Ticket
from forewarn.store.orders import DelayCase, Order
from forewarn.ticketing.transitions import apply, record, record_opened

log = logging.getLogger(__name__)

PRIORITY_OF = {"critical": "P1", "major": "P2", "minor": "P3", "info": "P4"}
DELAY_NOTICE = "delay_notice"
DELIVERED_NOTICE = "delivered_after_delay"
BY_PERSON = "by_person"
"""``delay_cases.resolution`` of a case a person resolved, closed or cancelled."""


def case_fingerprint(order_id: str) -> str:
    return f"delay:{order_id}"


class DelayCases:
    """Opens, updates, escalates and resolves delay cases, and queues their notices."""

    def __init__(self, settings: DelaySettings) -> None:
        self._settings = settings
        self._calendar = WorkingCalendar(
            timezone=settings.timezone,
            working_days=settings.working_days,
            holidays=frozenset(settings.holidays),
        )

    def open_case(self, session: Session, order_id: str) -> tuple[Ticket, DelayCase] | None:
        row = session.execute(
            select(Ticket, DelayCase)
            .join(DelayCase, DelayCase.ticket_id == Ticket.id)
            .where(Ticket.open_fingerprint == case_fingerprint(order_id))
        ).first()
        return None if row is None else (row[0], row[1])

    def on_verdict(
        self,
        session: Session,
        order: Order,
        facts: OrderFacts,
        verdict: OrderVerdict,
        now: datetime,
    ) -> datetime | None:
        """Bring the order's case in line with ``verdict``; returns when the case wants to
        be looked at again (an escalation deadline), if ever."""
        current = self.open_case(session, order.id)
        if verdict.status != "open":
            if current is not None:
                self._resolve(session, order, *current, verdict.status, now)
            return None
        if current is None:
            if not verdict.findings or _settled(session, order.id):
                return None
            current = self._open(session, order, verdict, now)
        else:
            self._update(session, current[0], current[1], order, verdict, now)
        ticket, case = current
        reason, check = needs_person(
            facts, self._calendar, self._settings.escalate_after_promise, now
        )
        if reason is not None and case.escalated_at is None:
            case.escalated_at = now
            case.escalation_reason = reason
            apply(
                session,
                ticket,
                "escalate",
                actor="delays",
                now=now,
                detail={"reason": reason},
                kind="queued_for_dispatcher",
            )
            log.info("delay case %s for order %s goes to a person: %s", ticket.id, order.id, reason)
        return check

    def _open(
        self, session: Session, order: Order, verdict: OrderVerdict, now: datetime
    ) -> tuple[Ticket, DelayCase]:
        first = verdict.findings[0]
        fingerprint = case_fingerprint(order.id)
        ticket = Ticket(
            kind="delay",
            fingerprint=fingerprint,
            open_fingerprint=fingerprint,
            status="open",
            priority=PRIORITY_OF.get(first.severity, "P3"),
            title=f"Order {order.id}: {first.summary}",
            customer_id=order.customer_id,
            fault=first.summary,
            alert_count=len(verdict.findings),
            opened_at=now,
            updated_at=now,
            sla_due_at=order.promised_at,
        )
        try:
            with session.begin_nested():
                session.add(ticket)
                session.flush()
        except IntegrityError:
            # Another worker opened this order's case first: that one is the case.
            winner = self.open_case(session, order.id)
            assert winner is not None
            return winner
        notify_customer = any(f.notify_customer for f in verdict.findings)
        case = DelayCase(
            ticket_id=ticket.id,
            order_id=order.id,
            customer_id=order.customer_id,
            first_rule=first.rule_id,
            reasons=[_reason(f) for f in verdict.findings],
            promised_at=order.promised_at,
            estimate_at=verdict.estimate,
            opened_at=now,
            notify_customer=notify_customer,
        )
        session.add(case)
        session.flush()
        record_opened(
            session,
            ticket,
            now,
            "delays",
            {
                "order": order.id,
                "rules": [f.rule_id for f in verdict.findings],
                "estimate": _iso(verdict.estimate),
            },
        )
        if notify_customer:
            self._schedule(session, case, DELAY_NOTICE, now)
        return ticket, case

    def _update(
        self,
        session: Session,
        ticket: Ticket,
        case: DelayCase,
        order: Order,
        verdict: OrderVerdict,
        now: datetime,
    ) -> None:
        known = {r["rule"] for r in case.reasons}
        new = [f for f in verdict.findings if f.rule_id not in known]
        if verdict.estimate is not None and verdict.estimate != case.estimate_at:
            case.estimate_at = verdict.estimate
        if not new:
            return
        case.reasons = [*case.reasons, *(_reason(f) for f in new)]
        ticket.alert_count += len(new)
        ticket.updated_at = now
        record(
            session,
            ticket,
            now,
            "reason_added",
            "delays",
            {"rules": [f.rule_id for f in new], "estimate": _iso(verdict.estimate)},
        )
        if not case.notify_customer and any(f.notify_customer for f in new):
            case.notify_customer = True
            self._schedule(session, case, DELAY_NOTICE, now)

    def _resolve(
        self,
        session: Session,
        order: Order,
        ticket: Ticket,
        case: DelayCase,
        outcome: str,
        now: datetime,
    ) -> None:
        apply(
            session,
            ticket,
            "resolve" if outcome == "delivered" else "cancel",
            actor="delays",
            now=now,
            detail={"outcome": outcome, "delivered_at": _iso(order.delivered_at)},
            kind="resolved",
        )
        # The order's own end closes the case: nothing is left for anyone to do.
        ticket.closed_at = now
        case.resolved_at = now
        case.resolution = outcome
        if case.pending_notice == DELAY_NOTICE:
            # Not yet told, and now there is nothing to tell.
            case.pending_notice = None
            case.notice_due_at = None
            case.notice_status = "not_needed"
        elif outcome == "delivered" and case.notice_status == "queued":
            self._schedule(session, case, DELIVERED_NOTICE, now)

    def _schedule(self, session: Session, case: DelayCase, notice: str, now: datetime) -> None:
        """Queue ``notice`` behind the customer's merge window (joining an open one)."""
        due = now + self._settings.merge_window
        if case.customer_id is not None:
            joined = session.scalar(
                select(DelayCase.notice_due_at)
                .where(
                    DelayCase.customer_id == case.customer_id,
                    DelayCase.pending_notice == notice,
                    DelayCase.id != case.id,
                )
                .order_by(DelayCase.notice_due_at)
                .limit(1)
            )
            if joined is not None:
                due = joined
        case.pending_notice = notice
        case.notice_due_at = due

    def flush_notices(self, session: Session, now: datetime) -> int:
        """Send the notices whose merge window has closed, one per customer and kind.
        Returns the number of cases told (or recorded as unreachable)."""
        due = session.scalars(
            select(DelayCase)
            .where(DelayCase.pending_notice.is_not(None), DelayCase.notice_due_at <= now)
            .order_by(DelayCase.id)
        ).all()
        groups: dict[tuple[str, str], list[DelayCase]] = defaultdict(list)
        for case in due:
            assert case.pending_notice is not None
            # A case without a customer is its own group: nobody to merge with.
            who = case.customer_id if case.customer_id is not None else f"#case-{case.id}"
            groups[(who, case.pending_notice)].append(case)
        for (customer_id, notice), cases in groups.items():
            if not customer_id.startswith("#case-"):
                # Later cases of the same customer ride along rather than wait for their
                # own window.
                extra = session.scalars(
                    select(DelayCase).where(
                        DelayCase.customer_id == customer_id,
                        DelayCase.pending_notice == notice,
                        DelayCase.notice_due_at > now,
                    )
                ).all()
                cases.extend(extra)
            self._send(session, customer_id, notice, sorted(cases, key=lambda c: c.id), now)
        return sum(len(c) for c in groups.values())

    def _send(
        self, session: Session, customer_id: str, notice: str, cases: list[DelayCase], now: datetime
    ) -> None:
        customer = session.get(Customer, customer_id) if not customer_id.startswith("#") else None
        recipient = customer_recipient(customer) if customer is not None else None
        tickets = {
            t.id: t
            for t in session.scalars(
                select(Ticket).where(Ticket.id.in_([c.ticket_id for c in cases]))
            )
        }
        orders = {
            o.id: o
            for o in session.scalars(select(Order).where(Order.id.in_([c.order_id for c in cases])))
        }
        queued: list[int] = []
        if recipient is not None and recipient.usable():
            context = notice_context(
                customer, cases, orders, self._settings.survey_url, self._settings.timezone
            )
            rows = notify(
                session,
                key=f"{notice}:case-{cases[0].id}",
                event=notice,
                recipient=recipient,
                context=context,
                now=now,
                ticket_id=cases[0].ticket_id,
            )
            queued = [r.id for r in rows]
            status = "queued"
        else:
            status = "no_contact"
        why = (
            "no customer on the order"
            if customer_id.startswith("#")
            else "customer unknown"
            if customer is None
            else "no phone or email (or opted out)"
        )
        for case in cases:
            case.pending_notice = None
            case.notice_due_at = None
            if notice == DELAY_NOTICE:
                case.notice_status = status
                case.warned_at = now
            else:
                case.followed_up_at = now
            detail: dict[str, Any] = {
                "notice": notice,
                "orders": [c.order_id for c in cases],
                "notifications": queued,
            }
            if status == "no_contact":
                detail["reason"] = why
            ticket = tickets[case.ticket_id]
            kind = "customer_notified" if status == "queued" else "customer_unreachable"
            record(session, ticket, now, kind, "delays", detail)


def settled_by_person(session: Session, ticket: Ticket, now: datetime) -> None:
    """A person ended delay case ``ticket`` (resolved, closed or cancelled it through the
    ticket commands): the case ends with it, a delay notice not yet sent is dropped, and
    the order rules open no new case for that order (the person has taken it over)."""
    case = session.scalar(select(DelayCase).where(DelayCase.ticket_id == ticket.id))
    if case is None or case.resolved_at is not None:
        return
    case.resolved_at = now
    case.resolution = BY_PERSON
    if case.pending_notice is not None:
        case.pending_notice = None
        case.notice_due_at = None
        case.notice_status = case.notice_status or "not_needed"


def _settled(session: Session, order_id: str) -> bool:
    found = session.scalar(
        select(DelayCase.id)
        .where(DelayCase.order_id == order_id, DelayCase.resolution == BY_PERSON)
        .limit(1)
    )
    return found is not None


def notice_context(
    customer: Customer | None,
    cases: list[DelayCase],
    orders: dict[str, Order],
    survey_url: str | None,
    timezone: str,
) -> dict[str, Any]:
    """What the delay templates render, frozen at the time of the notice."""
    listed = []
    for case in cases:
        order = orders.get(case.order_id)
        delivered = order.delivered_at if order is not None else None
        listed.append(
            {
                "id": case.order_id,
                "promised": _iso(case.promised_at),
                "estimate": _iso(case.estimate_at),
                "delivered": _iso(delivered),
                "late": bool(delivered and case.promised_at and delivered > case.promised_at),
                "reason": case.reasons[0]["summary"] if case.reasons else "",
                "case": case.ticket_id,
            }
        )
    return {
        "customer": {
            "name": customer.name if customer else "",
            "timezone": customer.timezone if customer else timezone,
        },
        "orders": listed,
        "survey_url": survey_url,
    }


def example_delay_context() -> dict[str, Any]:
    """The shape :func:`notice_context` produces, for ``forewarn check``."""
    return {
        "orders": [
            {
                "id": "e481f51cbdc54678b7cc49136f2d6af7",
                "promised": "2026-11-18T02:59:59+00:00",
                "estimate": "2026-11-20T18:00:00+00:00",
                "delivered": "2026-11-20T14:10:00+00:00",
                "late": True,
                "reason": "not handed to carrier within 2d of approved",
                "case": 2210,
            },
            {
                "id": "53cdb2fc8bc7dce0b6741e2150273451",
                "promised": "2026-11-19T02:59:59+00:00",
                "estimate": None,
                "delivered": None,
                "late": False,
                "reason": "promised delivery date passed without delivery",
                "case": 2211,
            },
        ],
        "survey_url": "https://example.com/survey",
    }


def _reason(finding: Finding) -> dict[str, Any]:
    return {
        "rule": finding.rule_id,
        "kind": finding.kind,
        "summary": finding.summary,
        "since": finding.since.isoformat(),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
