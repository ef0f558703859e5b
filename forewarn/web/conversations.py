"""Conversations with customers, in the console and under ``/api``.

* ``GET /conversations`` (viewer): open conversations, late ones first, by queue; closed
  ones with ``?show=closed``;
* ``GET /conversations/{id}`` (viewer): the whole history (the customer, the ticket or
  order case and its timeline, every message both ways) with, for ops, a reply form (the
  answer goes to the customer through the outbox on the channel they wrote on), "take
  it", "move to queue" and "close";
* ``GET /api/conversations``, ``GET /api/conversations/{id}``, ``POST
  /api/conversations/{id}/reply`` and ``/close`` (ops for the writes).

Viewers and technicians see bodies with contact details masked; ops see them in full.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from forewarn.notifier import conversations
from forewarn.notifier.privacy import scrub
from forewarn.store import audit
from forewarn.store.care import Conversation, ConversationMessage
from forewarn.store.models import Customer, Notification, Ticket
from forewarn.web.auth import Principal, Role, actor
from forewarn.web.console import MAX_ID
from forewarn.web.dependencies import ConsoleDep, Db, PageViewer, api_access, page_access
from forewarn.web.pages import CONSOLE_TAG, PageNotFound
from forewarn.web.redaction import known_addresses, redact, sees_bodies_in_full
from forewarn.web.signin import form_fields
from forewarn.web.timeline import ticket_timeline

MAX_REPLY = 1000
PageOps = Annotated[Principal, Depends(page_access(Role.ops))]
ApiOps = Annotated[Principal, Depends(api_access(Role.ops))]
ApiViewer = Annotated[Principal, Depends(api_access(Role.viewer))]
Form = Annotated[dict[str, str], Depends(form_fields)]
Show = Annotated[Literal["open", "closed", "all"], Query(description="which conversations")]

pages = APIRouter(tags=[CONSOLE_TAG], include_in_schema=False)
api = APIRouter(prefix="/api", tags=["conversations"])


class TurnOut(BaseModel):
    at: datetime
    direction: str
    """``in``: the customer wrote; ``out``: ops answered."""
    author: str
    channel: str
    body: str
    delivery: str | None = None
    """For an answer: the outbox row's status (queued, sent, delivered, failed...)."""
    notification_id: int | None = None


class ConversationOut(BaseModel):
    id: int
    customer_id: str
    customer_name: str | None
    queue: str
    owner: str | None
    reason: str
    status: str
    ticket_id: int | None
    ticket_title: str | None
    opened_at: datetime
    updated_at: datetime
    due_at: datetime | None
    """When a person must have answered; None while the customer has the next word."""
    late: bool
    escalated_at: datetime | None
    escalated_to: str | None
    last_channel: str | None
    closed_at: datetime | None
    closed_by: str | None
    last_message: str
    turns: list[TurnOut] = Field(default_factory=list)


class ConversationList(BaseModel):
    open: int
    late: int
    items: list[ConversationOut]


class ReplyIn(BaseModel):
    body: str = Field(min_length=1, max_length=MAX_REPLY)


def _who(principal: Principal) -> str:
    if principal.technician:
        return f"technician:{principal.technician}"
    return f"{principal.role.name}" if principal.authenticated else "ops"


def listing(
    session: Session, now: datetime, show: str, *, full: bool, queue: str | None = None
) -> ConversationList:
    query = select(Conversation, Customer.name).outerjoin(
        Customer, Customer.id == Conversation.customer_id
    )
    if show != "all":
        query = query.where(Conversation.status == show)
    if queue:
        query = query.where(Conversation.queue == queue)
    rows = session.execute(query.order_by(Conversation.updated_at.desc()).limit(500)).all()
    items = [_out(session, c, name, now, full=full, turns=False) for c, name in rows]
    items.sort(key=lambda c: (not c.late, c.due_at is None, c.due_at or c.updated_at))
    return ConversationList(
        open=sum(c.status == "open" for c in items),
        late=sum(c.late for c in items),
        items=items,
    )


def _out(
    session: Session,
    conversation: Conversation,
    customer_name: str | None,
    now: datetime,
    *,
    full: bool,
    turns: bool,
) -> ConversationOut:
    addresses = (
        None if full else known_addresses(session, conversation.ticket_id, conversation.customer_id)
    )

    def shown(text: str) -> str:
        return text if addresses is None else redact(scrub(text), addresses)

    messages = list(
        session.scalars(
            select(ConversationMessage)
            .where(ConversationMessage.conversation_id == conversation.id)
            .order_by(ConversationMessage.at, ConversationMessage.id)
        )
    )
    delivery = {}
    sent = [m.notification_id for m in messages if m.notification_id is not None]
    if turns and sent:
        delivery = dict(
            session.execute(
                select(Notification.id, Notification.status).where(Notification.id.in_(sent))
            ).all()
        )
    ticket = session.get(Ticket, conversation.ticket_id) if conversation.ticket_id else None
    return ConversationOut(
        id=conversation.id,
        customer_id=conversation.customer_id,
        customer_name=customer_name,
        queue=conversation.queue,
        owner=conversation.owner,
        reason=conversation.reason,
        status=conversation.status,
        ticket_id=conversation.ticket_id,
        ticket_title=ticket.title if ticket else None,
        opened_at=conversation.opened_at,
        updated_at=conversation.updated_at,
        due_at=conversation.due_at,
        late=conversation.status == "open"
        and conversation.due_at is not None
        and conversation.due_at <= now,
        escalated_at=conversation.escalated_at,
        escalated_to=conversation.escalated_to,
        last_channel=conversation.last_channel,
        closed_at=conversation.closed_at,
        closed_by=conversation.closed_by,
        last_message=shown(messages[-1].body)[:200] if messages else "",
        turns=[
            TurnOut(
                at=m.at,
                direction=m.direction,
                author=m.author,
                channel=m.channel,
                body=shown(m.body),
                delivery=delivery.get(m.notification_id) if m.notification_id else None,
                notification_id=m.notification_id,
            )
            for m in messages
        ]
        if turns
        else [],
    )


def _one(session: Session, conversation_id: int, now: datetime, full: bool) -> ConversationOut:
    found = session.get(Conversation, conversation_id) if 0 < conversation_id <= MAX_ID else None
    if found is None:
        raise HTTPException(404, f"conversation {conversation_id} not found")
    customer = session.get(Customer, found.customer_id)
    return _out(session, found, customer.name if customer else None, now, full=full, turns=True)


def _audit(
    session: Session, console: ConsoleDep, who: str, verb: str, conversation_id: int, what: str
) -> None:
    # The reply's text stays with its message (masked below ops), not in the audit trail.
    audit.record(
        session,
        at=console.clock.now(),
        actor=who,
        kind=f"conversation.{verb}",
        subject=f"conversation:{conversation_id}",
        summary=what,
    )


def _reply(console: ConsoleDep, conversation_id: int, body: str, author: str, who: str) -> None:
    body = body.strip()
    if not body:
        raise HTTPException(422, "write the answer first")
    if len(body) > MAX_REPLY:
        raise HTTPException(422, f"the answer is longer than {MAX_REPLY} characters")
    if not 0 < conversation_id <= MAX_ID:
        raise HTTPException(404, f"conversation {conversation_id} not found")
    with console.sessions.begin() as session:
        try:
            conversations.reply(
                session,
                conversation_id,
                body=body,
                author=author,
                now=console.clock.now(),
                care=console.config.settings.care,
            )
        except conversations.ConversationClosed as closed:
            raise HTTPException(409, str(closed)) from closed
        what = f"answered conversation {conversation_id} ({len(body)} characters)"
        _audit(session, console, who, "reply", conversation_id, what)


def _close(console: ConsoleDep, conversation_id: int, by: str, who: str) -> None:
    with console.sessions.begin() as session:
        if not 0 < conversation_id <= MAX_ID or not conversations.close(
            session, conversation_id, by, console.clock.now()
        ):
            raise HTTPException(409, f"conversation {conversation_id} is not open")
        _audit(
            session,
            console,
            who,
            "close",
            conversation_id,
            f"closed conversation {conversation_id}",
        )


# -- API --------------------------------------------------------------------------------------


@api.get("/conversations")
def list_conversations(
    console: ConsoleDep, principal: ApiViewer, db: Db, show: Show = "open"
) -> ConversationList:
    """Conversations, late ones first (``late``: past the queue's response time)."""
    return listing(db, console.clock.now(), show, full=sees_bodies_in_full(principal))


@api.get("/conversations/{conversation_id}")
def get_conversation(
    conversation_id: int, console: ConsoleDep, principal: ApiViewer, db: Db
) -> ConversationOut:
    """One conversation with every message both ways."""
    return _one(db, conversation_id, console.clock.now(), sees_bodies_in_full(principal))


@api.post("/conversations/{conversation_id}/reply", status_code=202)
def reply_api(
    conversation_id: int, body: ReplyIn, console: ConsoleDep, principal: ApiOps
) -> ConversationOut:
    """Answer the customer (queued in the outbox on the channel they wrote on)."""
    _reply(console, conversation_id, body.body, _who(principal), actor(principal, "api"))
    with console.sessions() as session:
        return _one(session, conversation_id, console.clock.now(), True)


@api.post("/conversations/{conversation_id}/close")
def close_api(conversation_id: int, console: ConsoleDep, principal: ApiOps) -> ConversationOut:
    """Close it; the customer's next message opens a new one."""
    _close(console, conversation_id, _who(principal), actor(principal, "api"))
    with console.sessions() as session:
        return _one(session, conversation_id, console.clock.now(), True)


# -- console ------------------------------------------------------------------------------


@pages.get("/conversations", response_class=HTMLResponse)
def conversations_page(
    request: Request,
    console: ConsoleDep,
    principal: PageViewer,
    db: Db,
    show: Show = "open",
    queue: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.:-]*$")] = None,
) -> HTMLResponse:
    now = console.clock.now()
    found = listing(db, now, show, full=sees_bodies_in_full(principal), queue=queue or None)
    return console.pages.render(
        request,
        "conversations.html",
        {
            "found": found,
            "show": show,
            "queue": queue or "",
            "queues": console.config.settings.care.queues,
        },
        now=now,
        principal=principal,
    )


@pages.get("/conversations/{conversation_id}", response_class=HTMLResponse)
def conversation_page(
    request: Request, conversation_id: int, console: ConsoleDep, principal: PageViewer, db: Db
) -> HTMLResponse:
    now = console.clock.now()
    full = sees_bodies_in_full(principal)
    try:
        found = _one(db, conversation_id, now, full)
    except HTTPException:
        raise PageNotFound(f"conversation {conversation_id}") from None
    timeline = (
        ticket_timeline(db, found.ticket_id, now, full_bodies=full) if found.ticket_id else None
    )
    return console.pages.render(
        request,
        "conversation.html",
        {
            "c": found,
            "timeline": timeline,
            "awake_minutes": int(
                console.config.settings.care.reply_awake_within.total_seconds() // 60
            ),
            "queues": console.config.settings.care.queues,
        },
        now=now,
        principal=principal,
    )


@pages.post("/conversations/{conversation_id}/reply")
def reply_page(
    conversation_id: int, console: ConsoleDep, principal: PageOps, form: Form
) -> RedirectResponse:
    who = actor(principal, "console")
    _reply(console, conversation_id, form.get("body", ""), _who(principal), who)
    return RedirectResponse(f"/conversations/{conversation_id}#turns", status_code=303)


@pages.post("/conversations/{conversation_id}/take")
def take_page(
    conversation_id: int, console: ConsoleDep, principal: PageOps, form: Form
) -> RedirectResponse:
    with console.sessions.begin() as session:
        if not 0 < conversation_id <= MAX_ID or not conversations.take(
            session, conversation_id, _who(principal), console.clock.now()
        ):
            raise HTTPException(409, f"conversation {conversation_id} is not open")
        who = actor(principal, "console")
        _audit(
            session, console, who, "take", conversation_id, f"took conversation {conversation_id}"
        )
    return RedirectResponse(f"/conversations/{conversation_id}", status_code=303)


@pages.post("/conversations/{conversation_id}/move")
def move_page(
    conversation_id: int, console: ConsoleDep, principal: PageOps, form: Form
) -> RedirectResponse:
    queue = form.get("queue", "")
    if queue not in {q.id for q in console.config.settings.care.queues}:
        raise HTTPException(422, f"unknown queue {queue!r}")
    with console.sessions.begin() as session:
        if not 0 < conversation_id <= MAX_ID or not conversations.move(
            session, conversation_id, queue, console.clock.now()
        ):
            raise HTTPException(409, f"conversation {conversation_id} is not open")
        what = f"moved conversation {conversation_id} to queue {queue}"
        _audit(session, console, actor(principal, "console"), "move", conversation_id, what)
    return RedirectResponse(f"/conversations/{conversation_id}", status_code=303)


@pages.post("/conversations/{conversation_id}/close")
def close_page(
    conversation_id: int, console: ConsoleDep, principal: PageOps, form: Form
) -> RedirectResponse:
    _close(console, conversation_id, _who(principal), actor(principal, "console"))
    return RedirectResponse("/conversations", status_code=303)
