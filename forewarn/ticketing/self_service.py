"""Self-service first: a simple fault the customer can fix is offered to them before the
visit, and closed by FIXED only when the telemetry agrees.

A monitor (or one fault code of it) may carry customer-safe ``self_service`` steps. A new
ticket for such a fault is dispatched as usual (the visit stays booked), but the
customer's first notice is ``self_service_offer``: the steps in their language and "reply
FIXED" (email: a signed link). Then, decided by :func:`decide` (pure):

* FIXED and no alert of the ticket still open: the ticket closes without a visit
  (closure ``self_service``) and the technician is released (``job_cancelled``);
* FIXED while an alert is still open: the telemetry has ``settle_within`` to come back to
  normal (a cleaned filter needs minutes to cool the unit); the customer is told we are
  checking, then either of the above;
* NOT FIXED, FIXED with the readings still out of range at ``settle_by``, or no answer
  by ``answer_by``: the visit is kept and the customer is told which;
* FIXED after the technician set out: the visit goes ahead (they will check it anyway).

Every outcome reaches the customer as ``self_service_result`` through the outbox. The
resolution rate (offers closed by FIXED / offers decided) is a KPI on ``/kpis`` and
``/metrics``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from forewarn.config.schema import MonitorSettings, SelfServiceSteps
from forewarn.notifier.links import LinkSigner
from forewarn.notifier.outbox import customer_recipient, notify
from forewarn.store.care import SelfServiceOffer
from forewarn.store.models import Alert, Customer, Technician, Ticket
from forewarn.ticketing.lifecycle import NOT_STARTED, WORKING
from forewarn.ticketing.notices import send_job_cancelled, ticket_context
from forewarn.ticketing.transitions import apply, record

log = logging.getLogger(__name__)

OFFER = "self_service_offer"
RESULT = "self_service_result"
PURPOSE = "self-service"
CLOSURE = "self_service"

Answer = Literal["fixed", "not_fixed"]
Outcome = Literal["fixed", "checking", "still_breaching", "not_fixed", "no_answer", "under_way"]


@dataclass(frozen=True)
class Steps:
    """The customer-safe steps for one rule (or one of its fault codes)."""

    rule_id: str
    code: str | None
    settings: SelfServiceSteps


class SelfServiceCatalog:
    """Which faults carry self-service steps, from the monitors' config."""

    def __init__(
        self,
        monitors: Sequence[MonitorSettings] = (),
        default_locale: str = "en",
        links: LinkSigner | None = None,
    ) -> None:
        self.default_locale = default_locale
        self.links = links
        self._rules: dict[str, SelfServiceSteps] = {}
        self._codes: dict[tuple[str, str], SelfServiceSteps] = {}
        for monitor in monitors:
            if monitor.self_service is not None:
                self._rules[monitor.id] = monitor.self_service
            for code, fault in getattr(monitor, "codes", {}).items():
                if fault.self_service is not None:
                    self._codes[(monitor.id, code)] = fault.self_service

    def for_alert(self, rule_id: str, evidence: Mapping[str, Any]) -> Steps | None:
        code = evidence.get("code")
        if isinstance(code, str) and (rule_id, code) in self._codes:
            return Steps(rule_id, code, self._codes[(rule_id, code)])
        found = self._rules.get(rule_id)
        return Steps(rule_id, None, found) if found is not None else None


def steps_in(steps: Mapping[str, str], locale: str, default: str = "en") -> str:
    """The steps in ``locale`` (``pt-BR`` -> ``pt`` -> the default -> any)."""
    for candidate in (locale, locale.split("-", 1)[0], default):
        if candidate in steps:
            return steps[candidate]
    return next(iter(steps.values()), "")


@dataclass(frozen=True)
class Decision:
    status: Literal["offered", "fixed", "resolved", "kept"]
    outcome: Outcome | None
    """What the customer is told now; None: nothing changes."""


def decide(
    *,
    status: str,
    answer: Answer | None,
    breaching: bool,
    ticket_status: str,
    now: datetime,
    answer_by: datetime,
    settle_by: datetime | None,
) -> Decision:
    """What an offer becomes at ``now`` (pure). ``answer`` is the customer's answer just
    received (None on a scheduled check); ``breaching``: an alert of the ticket is open."""
    if status not in ("offered", "fixed") or ticket_status not in WORKING:
        return Decision("kept" if status == "kept" else "resolved", None)  # settled already
    if answer == "not_fixed":
        return Decision("kept", "not_fixed")
    if answer == "fixed" or status == "fixed":
        if ticket_status not in NOT_STARTED:
            return Decision("kept", "under_way")
        if not breaching:
            return Decision("resolved", "fixed")
        if settle_by is not None and now >= settle_by:
            return Decision("kept", "still_breaching")
        return Decision("fixed", "checking" if answer == "fixed" else None)
    if now >= answer_by:
        return Decision("kept", "no_answer")
    return Decision("offered", None)


def offer(
    session: Session,
    ticket: Ticket,
    steps: Steps,
    now: datetime,
    *,
    key: str,
    links: LinkSigner | None,
    default_locale: str,
) -> SelfServiceOffer | None:
    """Open the offer for a new ticket and queue its first notice (instead of the plain
    fault notice); None when the ticket has no customer to tell."""
    customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    if customer is None:
        return None
    row = SelfServiceOffer(
        ticket_id=ticket.id,
        customer_id=customer.id,
        rule_id=steps.rule_id,
        code=steps.code,
        steps=dict(steps.settings.steps),
        status="offered",
        offered_at=now,
        answer_by=now + steps.settings.answer_within,
        settle_within_seconds=steps.settings.settle_within.total_seconds(),
    )
    session.add(row)
    session.flush()
    context = ticket_context(session, ticket)
    context["self_service"] = _context(row, customer.locale, default_locale, links, None)
    notify(
        session,
        key=key,
        event=OFFER,
        recipient=customer_recipient(customer),
        context=context,
        now=now,
        ticket_id=ticket.id,
        critical=ticket.severity == "critical",
    )
    record(
        session,
        ticket,
        now,
        "self_service_offered",
        "monitor",
        {"rule": steps.rule_id, "code": steps.code, "answer_by": row.answer_by.isoformat()},
    )
    return row


def _context(
    row: SelfServiceOffer,
    locale: str,
    default_locale: str,
    links: LinkSigner | None,
    outcome: Outcome | None,
) -> dict[str, Any]:
    expires = row.answer_by + timedelta(days=1)
    return {
        "steps": steps_in(row.steps, locale, default_locale),
        "answer_by": row.answer_by.isoformat(),
        "settle_by": row.settle_by.isoformat() if row.settle_by else None,
        "outcome": outcome,
        "link_fixed": links.link(PURPOSE, row.id, "fixed", expires) if links else None,
        "link_not_fixed": links.link(PURPOSE, row.id, "not_fixed", expires) if links else None,
    }


def pending_offer(session: Session, customer_id: str) -> SelfServiceOffer | None:
    """The customer's newest offer still waiting for an answer (FIXED / NOT FIXED)."""
    return session.scalar(
        select(SelfServiceOffer)
        .where(
            SelfServiceOffer.customer_id == customer_id,
            SelfServiceOffer.status.in_(("offered", "fixed")),
        )
        .order_by(SelfServiceOffer.id.desc())
        .limit(1)
    )


def answer(
    session: Session,
    offer_id: int,
    given: Answer,
    now: datetime,
    *,
    via: str,
    default_locale: str = "en",
) -> Outcome | None:
    """The customer answered FIXED or NOT FIXED (by SMS or the email link); returns what
    they are told (None: the offer was settled already and nothing changed)."""
    row = session.get(SelfServiceOffer, offer_id, with_for_update=True)
    if row is None or row.status not in ("offered", "fixed"):
        return None
    if row.status == "fixed" and given == "fixed":
        return "checking"  # said twice: still waiting for the readings
    row.answered_at, row.answered_by = now, via
    ticket = session.get(Ticket, row.ticket_id)
    assert ticket is not None
    if given == "fixed":
        row.settle_by = now + timedelta(seconds=row.settle_within_seconds)
    record(
        session,
        ticket,
        now,
        "customer_answered",
        "customer",
        {"answer": given, "via": via},
    )
    return _apply(session, row, ticket, given, now, default_locale)


def _apply(
    session: Session,
    row: SelfServiceOffer,
    ticket: Ticket,
    given: Answer | None,
    now: datetime,
    default_locale: str,
) -> Outcome | None:
    breaching = (
        session.scalar(
            select(Alert.id)
            .where(Alert.ticket_id == ticket.id, Alert.open_fingerprint.is_not(None))
            .limit(1)
        )
        is not None
    )
    decision = decide(
        status=row.status,
        answer=given,
        breaching=breaching,
        ticket_status=ticket.status,
        now=now,
        answer_by=row.answer_by,
        settle_by=row.settle_by,
    )
    row.status = decision.status
    if decision.status in ("resolved", "kept"):
        row.outcome = decision.outcome
        row.decided_at = now
    if decision.outcome == "fixed":
        _close_without_visit(session, ticket, now)
    elif decision.status == "kept" and decision.outcome is not None:
        record(
            session, ticket, now, "self_service_kept_visit", "customer", {"why": decision.outcome}
        )
    if decision.outcome is not None:
        _tell(session, row, ticket, decision.outcome, now, default_locale)
    return decision.outcome


def _close_without_visit(session: Session, ticket: Ticket, now: datetime) -> None:
    technician = session.get(Technician, ticket.technician_id) if ticket.technician_id else None
    ticket.closure_code = CLOSURE
    ticket.resolution_note = "fixed by the customer with the self-service steps"
    event = apply(
        session,
        ticket,
        "close",
        actor="customer",
        now=now,
        detail={"reason": "FIXED and the telemetry is back to normal: no visit needed"},
        kind="closed_by_self_service",
    )
    if technician is not None:
        send_job_cancelled(
            session, ticket, event, now, technician, "the customer fixed it (self-service)"
        )
    log.info("ticket %s closed without a visit: fixed by the customer", ticket.id)


def _tell(
    session: Session,
    row: SelfServiceOffer,
    ticket: Ticket,
    outcome: Outcome,
    now: datetime,
    default_locale: str,
) -> None:
    customer = session.get(Customer, row.customer_id)
    if customer is None:
        return
    context = ticket_context(session, ticket)
    context["self_service"] = _context(row, customer.locale, default_locale, None, outcome)
    notify(
        session,
        key=f"self-service:{row.id}:{outcome}",
        event=RESULT,
        recipient=customer_recipient(customer),
        context=context,
        now=now,
        ticket_id=ticket.id,
        # The customer just did what we asked: the answer must not wait for the morning.
        critical=outcome in ("fixed", "checking", "not_fixed", "under_way"),
    )


def sweep(session: Session, now: datetime, default_locale: str = "en") -> int:
    """The scheduled half: FIXED offers whose telemetry came back (or did not, by
    ``settle_by``), unanswered offers past ``answer_by``, offers whose ticket ended another
    way. Returns how many offers were decided."""
    rows = session.scalars(
        select(SelfServiceOffer)
        .where(SelfServiceOffer.status.in_(("offered", "fixed")))
        .order_by(SelfServiceOffer.id)
        .limit(500)
        .with_for_update(skip_locked=True)
    ).all()
    decided = 0
    for row in rows:
        ticket = session.get(Ticket, row.ticket_id)
        if ticket is None:
            continue
        if ticket.status not in WORKING:
            # Closed by the technician, the auto-close or ops: the offer did not decide it.
            row.status, row.outcome, row.decided_at = "void", None, now
            continue
        if row.status == "offered" and now < row.answer_by:
            continue
        if _apply(session, row, ticket, None, now, default_locale) is not None:
            decided += 1
    return decided


def example_self_service_context() -> dict[str, Any]:
    """Keys of the self-service templates, for ``forewarn check`` and the docs."""
    return {
        "self_service": {
            "steps": "Switch the unit off at the wall, rinse the air filter behind the front "
            "grille, let it dry and switch the unit on again.",
            "answer_by": "2026-11-25T11:00:00+00:00",
            "settle_by": "2026-11-25T10:30:00+00:00",
            "outcome": "fixed",
            "link_fixed": "https://forewarn.example.com/answer/self-service/7/fixed?until=1&sig=0",
            "link_not_fixed": "https://forewarn.example.com/answer/self-service/7/not_fixed"
            "?until=1&sig=0",
        }
    }
