"""One timeline per ticket: everything that happened about it, in time order.

Read from the rows, one query per kind: the alerts' state changes, the ticket's own
events, every message both ways (notices, updates and replies we sent; SMS the customer
sent, CSAT scores, free text), the self-service offer, tasks for people and the turns of
the conversations attached to the ticket. Beside it, a small chart of the readings around
the fault (the metric the first alert was about, from an hour before the ticket to its
close or now).

Bodies are shown in full to ops only; viewers and technicians see phone numbers, emails
and street addresses masked (the same rule as the notification pages).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from forewarn.notifier.privacy import scrub
from forewarn.store.care import Conversation, ConversationMessage, SelfServiceOffer
from forewarn.store.contacts import CsatResponse, FollowUp, InboundMessage
from forewarn.store.models import Alert, AlertEvent, Notification, Reading, Ticket, TicketEvent
from forewarn.web import charts
from forewarn.web.redaction import known_addresses, redact

BEFORE = timedelta(hours=1)
"""How much of the readings before the ticket the chart shows."""
MAX_POINTS = 5_000


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str
    """``alert``, ``ticket``, ``out`` (we sent), ``in`` (the customer sent), ``csat``,
    ``self-service``, ``task`` or ``conversation``."""
    title: str
    who: str = ""
    body: str = ""
    status: str = ""
    link: str | None = None


@dataclass(frozen=True)
class Timeline:
    entries: list[Entry]
    chart: Markup | None
    metric: str | None


def ticket_timeline(
    session: Session, ticket_id: int, now: datetime, *, full_bodies: bool = True
) -> Timeline | None:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        return None
    addresses = None if full_bodies else known_addresses(session, ticket_id, None)

    def shown(text: str | None) -> str:
        if not text:
            return ""
        return text if addresses is None else redact(scrub(text), addresses)

    entries: list[Entry] = []
    alerts = list(session.scalars(select(Alert).where(Alert.ticket_id == ticket_id)))
    by_alert = {a.id: a for a in alerts}
    if alerts:
        for event in session.scalars(
            select(AlertEvent).where(AlertEvent.alert_id.in_(list(by_alert)))
        ):
            alert = by_alert[event.alert_id]
            entries.append(
                Entry(
                    event.at,
                    "alert",
                    f"alert {alert.rule_id}: {event.from_state or 'new'} → {event.to_state}",
                    body=alert.summary if event.to_state == "firing" else "",
                    link=f"/alerts/{alert.id}",
                )
            )
    for change in session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)):
        status = ""
        if change.to_status and change.from_status != change.to_status:
            status = f"{change.from_status or 'new'} → {change.to_status}"
        entries.append(
            Entry(
                change.at,
                "ticket",
                change.kind.replace("_", " "),
                who=change.actor,
                body=_detail(change.detail),
                status=status,
            )
        )
    turns = _conversation_turns(session, ticket_id)
    replied = {t.notification_id for t in turns if t.notification_id is not None}
    asked = {t.inbound_message_id for t in turns if t.inbound_message_id is not None}
    for n in session.scalars(select(Notification).where(Notification.ticket_id == ticket_id)):
        if n.id in replied:
            continue
        entries.append(
            Entry(
                n.created_at,
                "out",
                f"{n.event.replace('_', ' ')} to {n.recipient_role} by {n.channel}",
                who=n.recipient_id,
                body=shown(n.body or n.subject),
                status=n.status,
                link=f"/notifications/{n.id}",
            )
        )
    for m in session.scalars(select(InboundMessage).where(InboundMessage.ticket_id == ticket_id)):
        if m.id in asked:
            continue
        entries.append(
            Entry(
                m.received_at,
                "in",
                f"{m.sender_role} wrote by SMS ({m.intent.replace('_', ' ')})",
                who=m.sender_masked,
                body=shown(m.body),
                status="answered" if m.reply else "",
            )
        )
    for score in session.scalars(select(CsatResponse).where(CsatResponse.ticket_id == ticket_id)):
        entries.append(Entry(score.at, "csat", f"satisfaction {score.score}/5", who="customer"))
    offer = session.scalar(select(SelfServiceOffer).where(SelfServiceOffer.ticket_id == ticket_id))
    if offer is not None and offer.decided_at is not None:
        entries.append(
            Entry(
                offer.decided_at,
                "self-service",
                f"self-service {offer.status}",
                body=(offer.outcome or "").replace("_", " "),
            )
        )
    for task in session.scalars(select(FollowUp).where(FollowUp.ticket_id == ticket_id)):
        entries.append(
            Entry(
                task.opened_at,
                "task",
                f"task #{task.id} ({task.kind.replace('_', ' ')}) {task.status}",
                body=shown(task.detail),
                link="/follow-ups",
            )
        )
    for turn in turns:
        entries.append(
            Entry(
                turn.at,
                "in" if turn.direction == "in" else "out",
                f"conversation #{turn.conversation_id}: "
                + ("customer wrote" if turn.direction == "in" else f"{turn.author} answered")
                + f" by {turn.channel}",
                who="customer" if turn.direction == "in" else turn.author,
                body=shown(turn.body),
                link=f"/conversations/{turn.conversation_id}",
            )
        )
    entries.sort(key=lambda e: (e.at, _ORDER.get(e.kind, 9)))
    chart, metric = _chart(session, ticket, alerts, now)
    return Timeline(entries, chart, metric)


_ORDER = {"alert": 0, "ticket": 1, "self-service": 2, "out": 3, "in": 4, "csat": 5, "task": 6}


def _conversation_turns(session: Session, ticket_id: int) -> list[ConversationMessage]:
    ids = list(session.scalars(select(Conversation.id).where(Conversation.ticket_id == ticket_id)))
    if not ids:
        return []
    return list(
        session.scalars(
            select(ConversationMessage)
            .where(ConversationMessage.conversation_id.in_(ids))
            .order_by(ConversationMessage.at, ConversationMessage.id)
        )
    )


def _detail(detail: dict[str, Any]) -> str:
    shown = []
    for key, value in detail.items():
        if key in ("candidates", "excluded", "ranked"):
            continue  # the dispatch table above the timeline shows them properly
        shown.append(f"{key.replace('_', ' ')}: {value}")
    return "; ".join(shown)[:300]


def _chart(
    session: Session, ticket: Ticket, alerts: list[Alert], now: datetime
) -> tuple[Markup | None, str | None]:
    if ticket.device_id is None:
        return None, None
    metric = next((str(a.evidence.get("metric")) for a in alerts if a.evidence.get("metric")), None)
    if metric is None:
        return None, None
    start = ticket.opened_at - BEFORE
    end = max(ticket.closed_at or ticket.resolved_at or now, start + timedelta(minutes=30))
    rows = session.execute(
        select(Reading.ts, Reading.value)
        .where(
            Reading.device_id == ticket.device_id,
            Reading.metric == metric,
            Reading.ts >= start,
            Reading.ts <= end,
            Reading.value.is_not(None),
        )
        .order_by(Reading.ts)
        .limit(MAX_POINTS)
    ).all()
    points = [charts.Point(ts, float(v)) for ts, v in rows if v is not None]
    spans = [
        charts.Span(a.pending_since or ticket.opened_at, a.resolved_at or end, a.rule_id)
        for a in alerts
    ]
    svg = charts.time_series(
        points,
        start,
        end,
        title=f"{ticket.device_id} {metric} around ticket #{ticket.id}",
        spans=spans,
        width=640,
        height=200,
    )
    return svg, metric
