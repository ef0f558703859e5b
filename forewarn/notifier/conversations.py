"""A person when asked: conversations between a customer and ops.

HUMAN, and any text no other inbound step reads, opens a conversation (or joins the
customer's open one): a queue chosen by the keyword routing (:mod:`.routing`), the owner
the queue names (or nobody: the whole queue), the customer's open ticket or order case
attached (never a closed one), and a due time from the queue's response SLA. Every
message both ways is a ``conversation_messages`` row.

Ops answer from the console (:func:`reply`): the answer is an outbound message through the
outbox on the channel the customer last wrote on, with the normal contact policy except
one thing: a customer who wrote less than ``care.reply_awake_within`` ago is evidently
awake, so the answer ignores their quiet hours (later answers respect them). An answer
clears the due time; the customer's next message sets it again.

A conversation past its due time escalates once (:func:`escalate_late`, a leader job): the
queue's ``escalate_to`` contact, else ``care.escalate_to``, else the ticketing supervisor,
else the dispatcher gets a ``conversation_escalated`` alert. It stays open until a person
closes it; the customer's next messages join it until then.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from forewarn.config.schema import CareSettings, ContactSettings, NotificationSettings
from forewarn.notifier.outbox import Recipient, customer_recipient, notify
from forewarn.notifier.routing import Route
from forewarn.store.care import Conversation, ConversationMessage
from forewarn.store.models import Customer, Notification, Ticket
from forewarn.ticketing.lifecycle import WORKING

log = logging.getLogger(__name__)

REPLY = "conversation_reply"
ESCALATED = "conversation_escalated"
PREFERS_CASE = {"delivery": "delay", "technical": "repair", "appointment": "repair"}
"""The kind of open ticket a queue attaches first (billing and complaints: the newest)."""


def open_case(session: Session, customer_id: str, queue: str) -> int | None:
    """The customer's open ticket or order case for a message to ``queue``: the newest of
    the kind the queue prefers, else the newest open one; never a closed one."""
    rows = session.execute(
        select(Ticket.id, Ticket.kind)
        .where(Ticket.customer_id == customer_id, Ticket.status.in_(WORKING))
        .order_by(Ticket.opened_at.desc(), Ticket.id.desc())
    ).all()
    preferred = PREFERS_CASE.get(queue)
    for ticket_id, kind in rows:
        if kind == preferred:
            return int(ticket_id)
    return int(rows[0][0]) if rows else None


def open_conversation(session: Session, customer_id: str) -> Conversation | None:
    return session.scalar(
        select(Conversation)
        .where(Conversation.customer_id == customer_id, Conversation.status == "open")
        .order_by(Conversation.id.desc())
        .limit(1)
    )


def customer_wrote(
    session: Session,
    *,
    customer: Customer,
    body: str,
    channel: str,
    route: Route,
    human: bool,
    now: datetime,
    care: CareSettings,
    settings: NotificationSettings,
    inbound_message_id: int | None = None,
) -> tuple[Conversation, bool]:
    """Add a customer's message to their open conversation, or open one; returns it and
    whether it was opened now."""
    conversation = open_conversation(session, customer.id)
    opened = conversation is None
    if conversation is None:
        queue = care.queue(route.queue)
        conversation = Conversation(
            customer_id=customer.id,
            ticket_id=open_case(session, customer.id, route.queue),
            queue=route.queue,
            owner=queue.owner,
            reason="human" if human else ("routed" if route.keyword else "text"),
            status="open",
            opened_at=now,
            updated_at=now,
        )
        session.add(conversation)
        session.flush()
        log.info(
            "conversation %s opened in queue %s (%s)",
            conversation.id,
            conversation.queue,
            conversation.reason,
        )
    elif conversation.ticket_id is not None and not _still_open(session, conversation.ticket_id):
        # The case it was about closed meanwhile: what the customer writes now is about
        # the open one, if any (never a closed one).
        conversation.ticket_id = open_case(session, customer.id, conversation.queue)
    if conversation.due_at is None:
        # Waiting for us again: the queue's response time runs from this message.
        conversation.due_at = now + respond_within(care, settings, conversation.queue)
        conversation.escalated_at = None
        conversation.escalated_to = None
    conversation.updated_at = now
    conversation.last_inbound_at = now
    conversation.last_channel = channel
    session.add(
        ConversationMessage(
            conversation_id=conversation.id,
            direction="in",
            author="customer",
            channel=channel,
            body=body,
            at=now,
            inbound_message_id=inbound_message_id,
        )
    )
    session.flush()
    return conversation, opened


def _still_open(session: Session, ticket_id: int) -> bool:
    status = session.scalar(select(Ticket.status).where(Ticket.id == ticket_id))
    return status in WORKING


def respond_within(care: CareSettings, settings: NotificationSettings, queue: str) -> timedelta:
    return care.queue(queue).respond_within or settings.human_response_sla


class ConversationClosed(ValueError):
    """The conversation is closed (or does not exist): nothing can be added to it."""


def reply(
    session: Session,
    conversation_id: int,
    *,
    body: str,
    author: str,
    now: datetime,
    care: CareSettings,
) -> ConversationMessage:
    """Queue an ops answer to the customer on the channel they last wrote on; the answer
    is a message row of the conversation and an outbox row (normal policy, see the module
    docstring for quiet hours). Raises :class:`ConversationClosed` for a closed one."""
    conversation = session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None or conversation.status != "open":
        raise ConversationClosed(f"conversation #{conversation_id} is not open")
    customer = session.get(Customer, conversation.customer_id)
    if customer is None:
        raise ConversationClosed(f"conversation #{conversation_id} has no customer")
    recipient = _recipient(customer, conversation, now, care)
    message = ConversationMessage(
        conversation_id=conversation.id,
        direction="out",
        author=author,
        channel=recipient.usable()[0] if recipient.usable() else "none",
        body=body,
        at=now,
    )
    session.add(message)
    session.flush()
    rows = notify(
        session,
        key=f"conversation:{conversation.id}:message:{message.id}",
        event=REPLY,
        recipient=recipient,
        context=reply_context(session, conversation, customer, body, author),
        now=now,
        ticket_id=conversation.ticket_id,
    )
    message.notification_id = rows[0].id if rows else None
    conversation.due_at = None  # answered: the customer has the next word
    conversation.escalated_at = None
    conversation.updated_at = now
    if conversation.owner is None:
        conversation.owner = author
    log.info("conversation %s answered by %s", conversation.id, author)
    return message


def _recipient(
    customer: Customer, conversation: Conversation, now: datetime, care: CareSettings
) -> Recipient:
    recipient = customer_recipient(customer)
    channel = conversation.last_channel
    if channel in recipient.addresses:
        # Back on the channel they wrote on, the others as fallbacks.
        ordered = (channel, *(c for c in recipient.channels if c != channel))
        recipient = replace(recipient, channels=tuple(c for c in ordered if c))
    awake = (
        conversation.last_inbound_at is not None
        and now - conversation.last_inbound_at <= care.reply_awake_within
    )
    return replace(recipient, quiet_hours=None) if awake else recipient


def reply_context(
    session: Session, conversation: Conversation, customer: Customer, body: str, author: str
) -> dict[str, Any]:
    ticket = session.get(Ticket, conversation.ticket_id) if conversation.ticket_id else None
    return {
        "customer": {"name": customer.name},
        "conversation": {
            "id": conversation.id,
            "queue": conversation.queue,
            "ticket": ticket.id if ticket else None,
        },
        "reply": {"body": body, "author": author.split(":", 1)[-1]},
    }


def take(session: Session, conversation_id: int, who: str, now: datetime) -> bool:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.status != "open":
        return False
    conversation.owner, conversation.updated_at = who, now
    return True


def move(session: Session, conversation_id: int, queue: str, now: datetime) -> bool:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.status != "open":
        return False
    conversation.queue, conversation.updated_at = queue, now
    return True


def close(session: Session, conversation_id: int, by: str, now: datetime) -> bool:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.status != "open":
        return False
    conversation.status, conversation.closed_at, conversation.closed_by = "closed", now, by
    conversation.due_at, conversation.updated_at = None, now
    log.info("conversation %s closed by %s", conversation.id, by)
    return True


def escalate_late(
    session: Session,
    now: datetime,
    care: CareSettings,
    *,
    supervisor: ContactSettings | None,
    dispatcher: ContactSettings | None,
) -> list[Conversation]:
    """Escalate every open conversation past its due time, once each; returns them."""
    late = session.scalars(
        select(Conversation)
        .where(
            Conversation.status == "open",
            Conversation.due_at <= now,
            Conversation.escalated_at.is_(None),
        )
        .order_by(Conversation.due_at, Conversation.id)
        .limit(200)
        .with_for_update(skip_locked=True)
    ).all()
    for conversation in late:
        contact = care.queue(conversation.queue).escalate_to or care.escalate_to
        contact_id = "care"
        if contact is None:
            contact, contact_id = supervisor, "supervisor"
        if contact is None:
            contact, contact_id = dispatcher, "dispatcher"
        conversation.escalated_at = now
        conversation.escalated_to = contact.name if contact else "nobody configured"
        if contact is not None:
            _tell(session, conversation, contact, contact_id, now)
        log.warning(
            "conversation %s in queue %s is late (due %s): escalated to %s",
            conversation.id,
            conversation.queue,
            conversation.due_at.isoformat() if conversation.due_at else "-",
            conversation.escalated_to,
        )
    return list(late)


def _tell(
    session: Session,
    conversation: Conversation,
    contact: ContactSettings,
    contact_id: str,
    now: datetime,
) -> list[Notification]:
    addresses = {"sms": contact.phone, "email": contact.email}
    recipient = Recipient(
        role="dispatcher",
        id=contact_id,
        name=contact.name,
        locale=contact.locale,
        timezone=contact.timezone,
        addresses={k: v for k, v in addresses.items() if v},
        channels=contact.channels,
        every_channel=True,
    )
    customer = session.get(Customer, conversation.customer_id)
    waited = now - (conversation.last_inbound_at or conversation.opened_at)
    return notify(
        session,
        key=f"conversation:{conversation.id}:escalated:{now.isoformat()}",
        event=ESCALATED,
        recipient=recipient,
        context={
            "customer": {"name": customer.name if customer else conversation.customer_id},
            "conversation": {
                "id": conversation.id,
                "queue": conversation.queue,
                "ticket": conversation.ticket_id,
                "owner": conversation.owner,
                "waited_minutes": int(waited.total_seconds() // 60),
            },
        },
        now=now,
        # A customer waiting for a person past the promise must not wait for the morning.
        critical=True,
    )


def example_conversation_context() -> dict[str, Any]:
    """Keys of the conversation templates, for ``forewarn check`` and the docs."""
    return {
        "conversation": {
            "id": 31,
            "queue": "billing",
            "ticket": 1042,
            "owner": "ops:rita",
            "waited_minutes": 135,
        },
        "reply": {
            "body": "Rita here: I have checked your bill, the extra charge was our mistake "
            "and is refunded.",
            "author": "rita",
        },
    }
