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

Everything happens in the caller's unit of work (:class:`~forewarn.ports.TicketStores`:
SQL for the live service, memory for a replay), ticket events and outbox rows together.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from forewarn.config.schema import DelaySettings
from forewarn.monitors.orders import (
    Finding,
    OrderFacts,
    OrderVerdict,
    WorkingCalendar,
    needs_person,
)
from forewarn.notifier.outbox import customer_recipient, post
from forewarn.ports import (
    DelayCaseRecord,
    Person,
    TicketExists,
    TicketRecord,
    TicketStores,
)
from forewarn.ticketing.transitions import move, note

log = logging.getLogger(__name__)

PRIORITY_OF = {"critical": "P1", "major": "P2", "minor": "P3", "info": "P4"}
DELAY_NOTICE = "delay_notice"
DELIVERED_NOTICE = "delivered_after_delay"
BY_PERSON = "by_person"
"""``delay_cases.resolution`` of a case a person resolved, closed or cancelled."""


def case_fingerprint(order_id: str) -> str:
    return f"delay:{order_id}"


class OrderLike(Protocol):
    """What a case needs of an order (the stored row, or a replay's value)."""

    @property
    def id(self) -> str: ...

    @property
    def customer_id(self) -> str | None: ...

    @property
    def promised_at(self) -> datetime | None: ...

    @property
    def delivered_at(self) -> datetime | None: ...


Case = tuple[TicketRecord, DelayCaseRecord]


class DelayCases:
    """Opens, updates, escalates and resolves delay cases, and queues their notices."""

    def __init__(self, settings: DelaySettings) -> None:
        self._settings = settings
        self._calendar = WorkingCalendar(
            timezone=settings.timezone,
            working_days=settings.working_days,
            holidays=frozenset(settings.holidays),
        )

    def open_case(self, stores: TicketStores, order_id: str) -> Case | None:
        ticket = stores.tickets.holding(case_fingerprint(order_id))
        case = stores.cases.of_ticket(ticket.id) if ticket is not None else None
        return None if ticket is None or case is None else (ticket, case)

    def on_verdict(
        self,
        stores: TicketStores,
        order: OrderLike,
        facts: OrderFacts,
        verdict: OrderVerdict,
        now: datetime,
    ) -> datetime | None:
        """Bring the order's case in line with ``verdict``; returns when the case wants to
        be looked at again (an escalation deadline), if ever."""
        current = self.open_case(stores, order.id)
        if verdict.status != "open":
            if current is not None:
                self._resolve(stores, order, *current, verdict.status, now)
            return None
        if current is None:
            if not verdict.findings or stores.cases.resolved_as(order.id, BY_PERSON):
                return None
            current = self._open(stores, order, verdict, now)
        else:
            current = self._update(stores, *current, verdict, now)
        ticket, case = current
        reason, check = needs_person(
            facts, self._calendar, self._settings.escalate_after_promise, now
        )
        if reason is not None and case.escalated_at is None:
            stores.cases.update(replace(case, escalated_at=now, escalation_reason=reason))
            move(
                stores,
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
        self, stores: TicketStores, order: OrderLike, verdict: OrderVerdict, now: datetime
    ) -> Case:
        first = verdict.findings[0]
        fingerprint = case_fingerprint(order.id)
        try:
            ticket = stores.tickets.insert(
                TicketRecord(
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
            )
        except TicketExists:
            # Another worker opened this order's case first: that one is the case.
            winner = self.open_case(stores, order.id)
            assert winner is not None
            return winner
        notify_customer = any(f.notify_customer for f in verdict.findings)
        case = stores.cases.insert(
            DelayCaseRecord(
                ticket_id=ticket.id,
                order_id=order.id,
                customer_id=order.customer_id,
                first_rule=first.rule_id,
                reasons=tuple(_reason(f) for f in verdict.findings),
                promised_at=order.promised_at,
                estimate_at=verdict.estimate,
                opened_at=now,
                notify_customer=notify_customer,
            )
        )
        note(
            stores,
            ticket,
            now,
            "opened",
            "delays",
            {
                "order": order.id,
                "rules": [f.rule_id for f in verdict.findings],
                "estimate": _iso(verdict.estimate),
            },
            opened=True,
        )
        if notify_customer:
            case = self._schedule(stores, case, DELAY_NOTICE, now)
        return ticket, case

    def _update(
        self,
        stores: TicketStores,
        ticket: TicketRecord,
        case: DelayCaseRecord,
        verdict: OrderVerdict,
        now: datetime,
    ) -> Case:
        known = {r["rule"] for r in case.reasons}
        new = [f for f in verdict.findings if f.rule_id not in known]
        updated = case
        if verdict.estimate is not None and verdict.estimate != case.estimate_at:
            updated = replace(updated, estimate_at=verdict.estimate)
        if new:
            updated = replace(updated, reasons=(*updated.reasons, *(_reason(f) for f in new)))
            ticket = replace(ticket, alert_count=ticket.alert_count + len(new), updated_at=now)
            stores.tickets.update(ticket)
            note(
                stores,
                ticket,
                now,
                "reason_added",
                "delays",
                {"rules": [f.rule_id for f in new], "estimate": _iso(verdict.estimate)},
            )
        if updated != case:
            stores.cases.update(updated)
        if new and not updated.notify_customer and any(f.notify_customer for f in new):
            updated = self._schedule(
                stores, replace(updated, notify_customer=True), DELAY_NOTICE, now
            )
        return ticket, updated

    def _resolve(
        self,
        stores: TicketStores,
        order: OrderLike,
        ticket: TicketRecord,
        case: DelayCaseRecord,
        outcome: str,
        now: datetime,
    ) -> None:
        ticket, _ = move(
            stores,
            ticket,
            "resolve" if outcome == "delivered" else "cancel",
            actor="delays",
            now=now,
            detail={"outcome": outcome, "delivered_at": _iso(order.delivered_at)},
            kind="resolved",
        )
        # The order's own end closes the case: nothing is left for anyone to do.
        stores.tickets.update(replace(ticket, closed_at=now))
        case = replace(case, resolved_at=now, resolution=outcome)
        if case.pending_notice == DELAY_NOTICE:
            # Not yet told, and now there is nothing to tell.
            stores.cases.update(
                replace(case, pending_notice=None, notice_due_at=None, notice_status="not_needed")
            )
        elif outcome == "delivered" and case.notice_status == "queued":
            self._schedule(stores, case, DELIVERED_NOTICE, now)
        else:
            stores.cases.update(case)

    def _schedule(
        self, stores: TicketStores, case: DelayCaseRecord, notice: str, now: datetime
    ) -> DelayCaseRecord:
        """Queue ``notice`` behind the customer's merge window (joining an open one)."""
        due = now + self._settings.merge_window
        if case.customer_id is not None:
            joined = stores.cases.notice_due(case.customer_id, notice, case.id)
            if joined is not None:
                due = joined
        scheduled = replace(case, pending_notice=notice, notice_due_at=due)
        stores.cases.update(scheduled)
        return scheduled

    def flush_notices(self, stores: TicketStores, now: datetime) -> int:
        """Send the notices whose merge window has closed, one per customer and kind.
        Returns the number of cases told (or recorded as unreachable)."""
        groups: dict[tuple[str, str], list[DelayCaseRecord]] = defaultdict(list)
        for case in stores.cases.notices_due(now):
            assert case.pending_notice is not None
            # A case without a customer is its own group: nobody to merge with.
            who = case.customer_id if case.customer_id is not None else f"#case-{case.id}"
            groups[(who, case.pending_notice)].append(case)
        for (customer_id, notice), cases in groups.items():
            if not customer_id.startswith("#case-"):
                # Later cases of the same customer ride along rather than wait for their
                # own window.
                cases.extend(stores.cases.notices_waiting(customer_id, notice, now))
            self._send(stores, customer_id, notice, sorted(cases, key=lambda c: c.id), now)
        return sum(len(c) for c in groups.values())

    def _send(
        self,
        stores: TicketStores,
        customer_id: str,
        notice: str,
        cases: list[DelayCaseRecord],
        now: datetime,
    ) -> None:
        customer = None if customer_id.startswith("#") else stores.contacts.customer(customer_id)
        recipient = customer_recipient(customer) if customer is not None else None
        queued: list[int] = []
        if recipient is not None and recipient.usable():
            delivered = stores.orders.delivered([c.order_id for c in cases])
            context = notice_context(
                customer, cases, delivered, self._settings.survey_url, self._settings.timezone
            )
            posted = post(
                stores.outbox,
                key=f"{notice}:case-{cases[0].id}",
                event=notice,
                recipient=recipient,
                context=context,
                now=now,
                ticket_id=cases[0].ticket_id,
            )
            queued = [n.id for n in posted]
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
            told = replace(case, pending_notice=None, notice_due_at=None)
            if notice == DELAY_NOTICE:
                told = replace(told, notice_status=status, warned_at=now)
            else:
                told = replace(told, followed_up_at=now)
            stores.cases.update(told)
            detail: dict[str, Any] = {
                "notice": notice,
                "orders": [c.order_id for c in cases],
                "notifications": queued,
            }
            if status == "no_contact":
                detail["reason"] = why
            ticket = stores.tickets.get(case.ticket_id)
            assert ticket is not None
            kind = "customer_notified" if status == "queued" else "customer_unreachable"
            note(stores, ticket, now, kind, "delays", detail)


def settled_by_person(stores: TicketStores, ticket_id: int, now: datetime) -> None:
    """A person ended delay case ``ticket_id`` (resolved, closed or cancelled it through
    the ticket commands): the case ends with it, a delay notice not yet sent is dropped,
    and the order rules open no new case for that order (the person has taken it over)."""
    case = stores.cases.of_ticket(ticket_id)
    if case is None or case.resolved_at is not None:
        return
    case = replace(case, resolved_at=now, resolution=BY_PERSON)
    if case.pending_notice is not None:
        case = replace(
            case,
            pending_notice=None,
            notice_due_at=None,
            notice_status=case.notice_status or "not_needed",
        )
    stores.cases.update(case)


def notice_context(
    customer: Person | None,
    cases: list[DelayCaseRecord],
    delivered_at: dict[str, datetime],
    survey_url: str | None,
    timezone: str,
) -> dict[str, Any]:
    """What the delay templates render, frozen at the time of the notice."""
    listed = []
    for case in cases:
        delivered = delivered_at.get(case.order_id)
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
