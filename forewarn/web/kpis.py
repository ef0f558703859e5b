"""Whether forewarn does its job, read from the rows: ``/kpis``, ``POST /api/contacts``
and the same figures on ``/metrics``.

An *episode* is a ticket (a repair work order or a delay case) opened in the period.
How each figure is read:

* **proactive rate** — share of episodes with a customer where forewarn's first notice
  (a ``fault_notice``/``delay_notice`` that left, or the digest it was merged into) went
  out before the customer's first contact. Contacts are the customer's inbound messages
  (HUMAN, HELP or free text) and the calls and chats recorded with ``POST /api/contacts``,
  from a day before the ticket opened until it was resolved; an episode where the
  customer reached out first, or was never told, is reactive;
* **time to detect** — the first alert's onset (``pending_since``) to the ticket; **time
  to assign / accept / resolve** — the ticket's opening to its first assignment, the
  technician's ACK and the resolution (medians and 90th percentiles);
* **SLA breaches** — resolved after the SLA due time, or still open past it;
* **first-time fix** — resolved as ``fixed`` and never reopened (share of resolved);
  **repeat visits** — episodes whose fault came back and reopened them;
* **no fault found per rule** — :func:`forewarn.ticketing.reports.closures_per_rule`;
* **delivery rate per channel** — delivered (or accepted, for channels without receipts)
  among the messages that reached a final state;
* **CSAT** — the mean survey score, for proactive and reactive episodes apart;
* **self-service resolution rate** — of the self-service offers decided in the period,
  the share closed by FIXED with the telemetry back to normal (no visit); the rest kept
  the visit (NOT FIXED, still breaching, no answer, technician already on the way).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, sessionmaker

from forewarn.clock import Clock
from forewarn.notifier.events import PROACTIVE
from forewarn.store.care import SelfServiceOffer
from forewarn.store.console import CustomerContact
from forewarn.store.contacts import CsatResponse, InboundMessage
from forewarn.store.models import Alert, Customer, Notification, Ticket, TicketEvent
from forewarn.store.tickets import SqlTicketStore
from forewarn.ticketing import reports
from forewarn.web import charts
from forewarn.web.auth import Principal, Role
from forewarn.web.dependencies import ConsoleDep, Db, PageViewer, api_access

Period = Literal["day", "week"]
PERIODS: dict[str, tuple[timedelta, int]] = {
    "day": (timedelta(days=1), 14),
    "week": (timedelta(weeks=1), 8),
}
"""Bucket length and how many buckets a page shows."""
CONTACT_LEAD = timedelta(days=1)
"""A contact this long before the ticket opened still counts for its episode (the
customer called about zero output before the fault was detected)."""
CONTACT_INTENTS = ("human", "help", "text")
FINAL = {"delivered": True, "sent": True, "failed": False, "bounced": False, "undelivered": False}
"""Final notification statuses and whether they count as delivered."""


@dataclass(frozen=True)
class SelfService:
    """Self-service offers decided in a period: closed without a visit, or the visit kept."""

    resolved: int
    kept: int

    @property
    def decided(self) -> int:
        return self.resolved + self.kept

    @property
    def rate(self) -> float | None:
        return self.resolved / self.decided if self.decided else None


def self_service(session: Session, since: datetime, until: datetime) -> SelfService:
    rows = session.execute(
        select(SelfServiceOffer.status, func.count())
        .where(SelfServiceOffer.decided_at >= since, SelfServiceOffer.decided_at < until)
        .group_by(SelfServiceOffer.status)
    ).all()
    counts = {status: int(n) for status, n in rows}
    return SelfService(resolved=counts.get("resolved", 0), kept=counts.get("kept", 0))


router = APIRouter(tags=["console"], include_in_schema=False)
api = APIRouter(prefix="/api", tags=["kpis"])
ApiOps = Annotated[Principal, Depends(api_access(Role.ops))]


@dataclass(frozen=True)
class Episode:
    ticket_id: int
    opened_at: datetime
    rule: str
    site: str
    customer_id: str | None
    onset: datetime | None
    assigned_at: datetime | None
    accepted_at: datetime | None
    resolved_at: datetime | None
    sla_breached: bool
    first_notice: datetime | None
    first_contact: datetime | None
    closure_code: str | None
    repeat_visits: int
    csat: int | None

    @property
    def proactive(self) -> bool:
        return self.first_notice is not None and (
            self.first_contact is None or self.first_notice < self.first_contact
        )


def episodes(session: Session, since: datetime, until: datetime) -> list[Episode]:
    """Every ticket opened in ``[since, until)`` with what the KPIs need, in 7 queries."""
    tickets = session.scalars(
        select(Ticket).where(Ticket.opened_at >= since, Ticket.opened_at < until)
    ).all()
    if not tickets:
        return []
    ids = [t.id for t in tickets]
    onset = dict(
        session.execute(
            select(Alert.ticket_id, func.min(Alert.pending_since))
            .where(Alert.ticket_id.in_(ids))
            .group_by(Alert.ticket_id)
        ).all()
    )
    assigned = dict(
        session.execute(
            select(TicketEvent.ticket_id, func.min(TicketEvent.at))
            .where(TicketEvent.ticket_id.in_(ids), TicketEvent.to_status == "assigned")
            .group_by(TicketEvent.ticket_id)
        ).all()
    )
    digest = aliased(Notification)
    notices: dict[int, datetime] = {}
    for ticket_id, sent in session.execute(
        select(Notification.ticket_id, func.coalesce(Notification.sent_at, digest.sent_at))
        .outerjoin(digest, digest.id == Notification.merged_into)
        .where(
            Notification.ticket_id.in_(ids),
            Notification.recipient_role == "customer",
            Notification.event.in_(sorted(PROACTIVE)),
        )
    ).all():
        if ticket_id is None or sent is None:
            continue
        if ticket_id not in notices or sent < notices[ticket_id]:
            notices[ticket_id] = sent
    customers = sorted({t.customer_id for t in tickets if t.customer_id})
    contacts: dict[str, list[tuple[datetime, int | None]]] = {}
    for customer, at, ticket_id in session.execute(
        select(CustomerContact.customer_id, CustomerContact.at, CustomerContact.ticket_id).where(
            CustomerContact.customer_id.in_(customers), CustomerContact.at >= since - CONTACT_LEAD
        )
    ).all():
        contacts.setdefault(customer, []).append((at, ticket_id))
    for sender, at in session.execute(
        select(InboundMessage.sender_id, InboundMessage.received_at).where(
            InboundMessage.sender_role == "customer",
            InboundMessage.sender_id.in_(customers),
            InboundMessage.intent.in_(CONTACT_INTENTS),
            InboundMessage.received_at >= since - CONTACT_LEAD,
        )
    ).all():
        contacts.setdefault(str(sender), []).append((at, None))
    csat = dict(
        session.execute(
            select(CsatResponse.ticket_id, CsatResponse.score).where(
                CsatResponse.ticket_id.in_(ids)
            )
        ).all()
    )
    found = []
    for t in tickets:
        done = t.resolved_at or t.closed_at
        ends = done or until
        mine = [
            at
            for at, ticket_id in contacts.get(t.customer_id or "", ())
            if ticket_id == t.id or (ticket_id is None and t.opened_at - CONTACT_LEAD <= at <= ends)
        ]
        breached = t.sla_due_at is not None and (
            (done is not None and done > t.sla_due_at) or (done is None and until > t.sla_due_at)
        )
        found.append(
            Episode(
                ticket_id=t.id,
                opened_at=t.opened_at,
                rule=t.rule_id or t.kind,
                site=t.site_id or "—",
                customer_id=t.customer_id,
                onset=onset.get(t.id),
                assigned_at=assigned.get(t.id),
                accepted_at=t.accepted_at,
                resolved_at=t.resolved_at,
                sla_breached=breached,
                first_notice=notices.get(t.id),
                first_contact=min(mine, default=None),
                closure_code=t.closure_code,
                repeat_visits=t.repeat_visits,
                csat=csat.get(t.id),
            )
        )
    return found


@dataclass(frozen=True)
class Summary:
    """The figures for one group of episodes (a day, a week, a rule, a site)."""

    episodes: int
    with_customer: int
    proactive: int
    detect: list[float] = field(default_factory=list)
    assign: list[float] = field(default_factory=list)
    accept: list[float] = field(default_factory=list)
    resolve: list[float] = field(default_factory=list)
    sla_breaches: int = 0
    resolved: int = 0
    first_time_fixed: int = 0
    repeat: int = 0
    csat_proactive: list[int] = field(default_factory=list)
    csat_reactive: list[int] = field(default_factory=list)

    @property
    def proactive_rate(self) -> float | None:
        return self.proactive / self.with_customer if self.with_customer else None

    @property
    def first_time_fix_rate(self) -> float | None:
        return self.first_time_fixed / self.resolved if self.resolved else None

    @property
    def repeat_rate(self) -> float | None:
        return self.repeat / self.episodes if self.episodes else None


def summarise(group: Sequence[Episode]) -> Summary:
    def minutes(pairs: Iterable[tuple[datetime | None, datetime | None]]) -> list[float]:
        return sorted((b - a).total_seconds() / 60 for a, b in pairs if a and b and b >= a)

    told = [e for e in group if e.customer_id]
    resolved = [e for e in group if e.resolved_at is not None]
    return Summary(
        episodes=len(group),
        with_customer=len(told),
        proactive=sum(e.proactive for e in told),
        detect=minutes((e.onset, e.opened_at) for e in group),
        assign=minutes((e.opened_at, e.assigned_at) for e in group),
        accept=minutes((e.opened_at, e.accepted_at) for e in group),
        resolve=minutes((e.opened_at, e.resolved_at) for e in group),
        sla_breaches=sum(e.sla_breached for e in group),
        resolved=len(resolved),
        first_time_fixed=sum(e.closure_code == "fixed" and e.repeat_visits == 0 for e in resolved),
        repeat=sum(e.repeat_visits > 0 for e in group),
        csat_proactive=[e.csat for e in told if e.csat is not None and e.proactive],
        csat_reactive=[e.csat for e in told if e.csat is not None and not e.proactive],
    )


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def p90(values: Sequence[float]) -> float | None:
    if not values:
        return None
    return sorted(values)[min(len(values) - 1, int(0.9 * len(values)))]


def mean(values: Sequence[int]) -> float | None:
    return round(statistics.fmean(values), 2) if values else None


def delivery_by_channel(session: Session, since: datetime) -> list[tuple[str, int, int]]:
    """(channel, delivered, final) for messages created since ``since``."""
    rows = session.execute(
        select(Notification.channel, Notification.status, func.count())
        .where(Notification.created_at >= since, Notification.status.in_(sorted(FINAL)))
        .group_by(Notification.channel, Notification.status)
    ).all()
    totals: dict[str, list[int]] = {}
    for channel, status, count in rows:
        entry = totals.setdefault(str(channel), [0, 0])
        entry[1] += int(count)
        if FINAL[str(status)]:
            entry[0] += int(count)
    return sorted((c, d, n) for c, (d, n) in totals.items())


@dataclass(frozen=True)
class Bucket:
    start: datetime
    summary: Summary


def buckets(found: Sequence[Episode], start: datetime, step: timedelta, count: int) -> list[Bucket]:
    groups: list[list[Episode]] = [[] for _ in range(count)]
    for episode in found:
        n = int((episode.opened_at - start) / step)
        if 0 <= n < count:
            groups[n].append(episode)
    return [Bucket(start + step * n, summarise(group)) for n, group in enumerate(groups)]


def by_key(found: Sequence[Episode], key: Callable[[Episode], str]) -> list[tuple[str, Summary]]:
    groups: dict[str, list[Episode]] = {}
    for episode in found:
        groups.setdefault(key(episode), []).append(episode)
    return sorted(((k, summarise(g)) for k, g in groups.items()), key=lambda kv: -kv[1].episodes)


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def _percent(value: float | None) -> float | None:
    return round(100 * value, 1) if value is not None else None


@router.get("/kpis", response_class=HTMLResponse)
def kpis_page(
    request: Request, console: ConsoleDep, principal: PageViewer, db: Db, period: Period = "day"
) -> HTMLResponse:
    """The KPIs per day (14 days) or week (8 weeks), per rule, site and channel."""
    now = console.clock.now()
    step, count = PERIODS[period]
    end = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    if period == "week":
        end = end + timedelta(days=(7 - end.weekday()) % 7)  # the coming Monday
    start = end - step * count
    found = episodes(db, start, end)
    series = buckets(found, start, step, count)
    total = summarise(found)
    label = "%m-%d" if period == "day" else "week of %m-%d"
    proactive_chart = charts.bars(
        [(b.start.strftime(label), _percent(b.summary.proactive_rate)) for b in series],
        title="proactive rate per " + period,
        unit=" %",
    )
    detect_chart = charts.bars(
        [(b.start.strftime(label), _round(median(b.summary.detect))) for b in series],
        title="median minutes from onset to ticket per " + period,
        unit=" min",
    )
    closures = reports.closures_per_rule(SqlTicketStore(db), start)
    nff_chart = charts.bars(
        [(r.rule, _percent(r.noise_ratio)) for r in closures],
        title="no fault found (and cleared by itself) per rule",
        unit=" %",
    )
    delivery = delivery_by_channel(db, start)
    delivery_chart = charts.bars(
        [(c, _percent(d / n if n else None)) for c, d, n in delivery],
        title="delivery rate per channel",
        unit=" %",
    )
    return console.pages.render(
        request,
        "kpis.html",
        {
            "period": period,
            "start": start,
            "end": end,
            "series": series,
            "label": label,
            "total": total,
            "rules": by_key(found, lambda e: e.rule),
            "sites": by_key(found, lambda e: e.site),
            "closures": closures,
            "delivery": delivery,
            "charts": {
                "proactive": proactive_chart,
                "detect": detect_chart,
                "nff": nff_chart,
                "delivery": delivery_chart,
            },
            "median": median,
            "p90": p90,
            "mean": mean,
            "percent": _percent,
            "self_service": self_service(db, start, end),
        },
        now=now,
        principal=principal,
    )


class ContactIn(BaseModel):
    """A customer reached out outside forewarn (a call, a chat, an email to support)."""

    customer_id: str = Field(min_length=1, max_length=128)
    at: datetime
    """When (ISO 8601 with offset)."""
    channel: Literal["phone", "chat", "email", "sms", "other"] = "phone"
    device_id: str | None = Field(None, max_length=128)
    ticket_id: int | None = Field(None, ge=1, le=2**31 - 1)
    external_id: str | None = Field(None, min_length=1, max_length=128)
    """Your system's id for it: sending the same one again records nothing new."""
    note: str = Field("", max_length=1000)


class ContactOut(BaseModel):
    id: int
    customer_id: str
    at: datetime
    channel: str
    ticket_id: int | None
    created: bool


@api.post("/contacts", status_code=201)
def record_contact(body: ContactIn, principal: ApiOps, console: ConsoleDep) -> ContactOut:
    """Record a customer contact taken elsewhere (it decides the proactive rate).

    422 for an unknown customer or a time without offset; a repeated ``external_id``
    answers with the contact already recorded (``created`` false).
    """
    if body.at.tzinfo is None:
        raise HTTPException(422, "at: give the time with its UTC offset")
    return _record(console.sessions, body, console.clock)


def _record(sessions: sessionmaker[Session], body: ContactIn, clock: Clock) -> ContactOut:
    del clock  # the contact's own time is what counts
    with sessions.begin() as session:
        if session.get(Customer, body.customer_id) is None:
            raise HTTPException(422, f"customer_id: unknown customer {body.customer_id!r}")
        if body.external_id is not None:
            known = session.scalar(
                select(CustomerContact).where(CustomerContact.external_id == body.external_id)
            )
            if known is not None:
                return _out(known, created=False)
        row = CustomerContact(
            customer_id=body.customer_id,
            at=body.at,
            channel=body.channel,
            source="api",
            device_id=body.device_id,
            ticket_id=body.ticket_id,
            external_id=body.external_id,
            note=body.note,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError as problem:  # the same external id, recorded concurrently
            raise HTTPException(409, f"contact {body.external_id} is being recorded") from problem
        return _out(row, created=True)


def _out(row: CustomerContact, *, created: bool) -> ContactOut:
    return ContactOut(
        id=row.id,
        customer_id=row.customer_id,
        at=row.at,
        channel=row.channel,
        ticket_id=row.ticket_id,
        created=created,
    )


def kpi_metrics(
    sessions: sessionmaker[Session], clock: Clock
) -> Callable[[], Iterable[tuple[str, dict[str, str], float]]]:
    """The last 7 days' KPIs as gauges for ``/metrics`` (one pass over that week's rows)."""

    def samples() -> Iterable[tuple[str, dict[str, str], float]]:
        now = clock.now()
        since = now - timedelta(days=7)
        with sessions() as session:
            found = episodes(session, since, now)
            delivery = delivery_by_channel(session, since)
            helped = self_service(session, since, now)
        week = {"window": "7d"}
        total = summarise(found)
        yield ("forewarn_kpi_episodes", week, float(total.episodes))
        if total.proactive_rate is not None:
            yield ("forewarn_kpi_proactive_ratio", week, total.proactive_rate)
        if total.first_time_fix_rate is not None:
            yield ("forewarn_kpi_first_time_fix_ratio", week, total.first_time_fix_rate)
        yield ("forewarn_kpi_sla_breaches", week, float(total.sla_breaches))
        for name, values in (("detect", total.detect), ("resolve", total.resolve)):
            middle = median(values)
            if middle is not None:
                yield (
                    f"forewarn_kpi_time_to_{name}_seconds",
                    {**week, "quantile": "0.5"},
                    middle * 60,
                )
        for channel, delivered, final in delivery:
            if final:
                yield (
                    "forewarn_kpi_delivery_ratio",
                    {**week, "channel": channel},
                    delivered / final,
                )
        yield ("forewarn_kpi_self_service_resolutions", week, float(helped.resolved))
        if helped.rate is not None:
            yield ("forewarn_kpi_self_service_ratio", week, helped.rate)

    return samples
