"""Inbound SMS: one ordered list of steps, each of which may take the message.

:data:`STEPS` is the whole routing, in order; the first step that answers takes the
message (a step returns None to pass it on):

1. ``keywords``: STOP (and the carrier-standard synonyms) opts out and cancels every
   waiting message; START opts back in; HELP says who we are and what to write;
2. ``technician_command``: a technician's message goes to ticketing (``ACK 1042``...);
3. ``appointment_reply``: an answer to a pending visit-window proposal (1..N, N+1,
   CONFIRM, RESCHEDULE), taken by ``visits`` (the appointments' answer function);
4. ``self_service_answer``: FIXED or NOT FIXED while a self-service offer waits
   (:mod:`forewarn.ticketing.self_service`);
5. ``csat_score``: a digit 1-5 after a satisfaction survey is its score;
6. ``conversation``: HUMAN, and any text no step above reads, opens a conversation with a
   person (or joins the customer's open one), routed to a queue by keywords in the
   customer's language, with their open ticket or order case attached, never a closed one
   (:mod:`forewarn.notifier.conversations`).

Every message is a row in ``inbound_messages`` with what was made of it, the ticket it
was about and the reply sent, keyed by Twilio's message SID, so a webhook retried by
Twilio is answered the same and acted on once. An SMS from an unknown number is ignored.
"""

from __future__ import annotations

import importlib
import logging
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from forewarn.config.schema import CareSettings, NotificationSettings
from forewarn.notifier import conversations
from forewarn.notifier.channels import InboundText
from forewarn.notifier.events import SURVEY
from forewarn.notifier.followups import open_task
from forewarn.notifier.preferences import CHANNELS, opt_in, opt_out
from forewarn.notifier.privacy import mask_phone
from forewarn.notifier.render import Renderer, TemplateProblem
from forewarn.notifier.routing import Route, route
from forewarn.store.contacts import CsatResponse, InboundMessage
from forewarn.store.models import Customer, Notification, Technician
from forewarn.ticketing import self_service

log = logging.getLogger(__name__)

Intent = Literal[
    "stop", "start", "help", "human", "csat", "fixed", "not_fixed", "text", "appointment"
]

# Whole-message keywords, as carriers and Twilio's Advanced Opt-Out read them, plus the
# customary ones in the languages we ship ("TD"/退订 is the Chinese carriers' STOP).
KEYWORDS: dict[str, Intent] = {
    **dict.fromkeys(
        ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"], "stop"
    ),
    **dict.fromkeys(["TD", "退订", "退訂", "取消订阅", "取消訂閱", "หยุด", "ยกเลิก"], "stop"),
    **dict.fromkeys(["START", "UNSTOP", "YES", "开始", "開始", "เริ่ม"], "start"),
    **dict.fromkeys(["HELP", "INFO", "帮助", "幫助", "ช่วยเหลือ"], "help"),
    **dict.fromkeys(["HUMAN", "AGENT", "PERSON", "人工", "真人", "เจ้าหน้าที่"], "human"),
    # The self-service answers: FIXED / NOT FIXED as the messages spell them, and the
    # words a customer is likely to type in their own language.
    **dict.fromkeys(
        ["FIXED", "FIXED IT", "RESOLVIDO", "JÁ ESTÁ", "已修复", "修好了", "已修復", "แก้แล้ว"],
        "fixed",
    ),
    **dict.fromkeys(
        [
            "NOT FIXED",
            "NOTFIXED",
            "NÃO RESOLVIDO",
            "NAO RESOLVIDO",
            "未修复",
            "没修好",
            "未修復",
            "沒修好",
            "ยังไม่หาย",
            "ยังไม่ได้",
        ],
        "not_fixed",
    ),
}
SURVEY_ANSWER_WITHIN = timedelta(days=7)
"""A digit later than this after the survey is read as free text, not a score."""

TechnicianCommands = Callable[[Session, str, str, datetime], str]


class Answered(Protocol):
    """A reply taken by a step of the routing; ``reply`` is the SMS to send back (None:
    nothing to say)."""

    @property
    def reply(self) -> str | None: ...


VisitReplies = Callable[[Session, Customer, str, datetime, Renderer], Answered | None]
"""Answers to a visit proposal (1..N, N+1, CONFIRM, RESCHEDULE); None when the customer
has no proposal waiting and no visit to move, or the text is not about one."""
COMMAND_NOT_AVAILABLE = (
    "forewarn: command not available. Your message was passed to the dispatcher."
)


def classify(text: str) -> tuple[Intent, int | None]:
    """What a customer's message asks for; the score for a bare digit 1-5."""
    normal = unicodedata.normalize("NFKC", text).strip().strip(".!?。 ").upper()
    normal = re.sub(r"\s+", " ", normal)
    if re.fullmatch(r"[1-5]", normal):
        return "csat", int(normal)
    return KEYWORDS.get(normal, "text"), None


InboundSms = InboundText
"""An inbound SMS as the channel's webhook parsed it."""


@dataclass
class Inbound:
    """One inbound message as the steps see it."""

    session: Session
    message: InboundSms
    record: InboundMessage
    now: datetime
    renderer: Renderer
    settings: NotificationSettings
    care: CareSettings
    customer: Customer | None
    technician: Technician | None
    commands: TechnicianCommands | None
    visits: VisitReplies | None
    intent: Intent
    score: int | None
    channel: str = "sms"


@dataclass(frozen=True)
class Taken:
    """What a step made of the message: the intent recorded and the reply, either ready
    (``text``) or to be rendered from ``event`` in the customer's language."""

    intent: str
    event: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    text: str | None = None
    ticket_id: int | None = None
    conversation_id: int | None = None


Step = Callable[[Inbound], Taken | None]


def keywords(inbound: Inbound) -> Taken | None:
    customer = inbound.customer
    if customer is None or inbound.intent not in ("stop", "start", "help"):
        return None
    if inbound.technician is not None and _looks_like_command(inbound.message.body):
        return None
    if inbound.intent == "stop":
        scope = list(CHANNELS) if inbound.settings.stop_scope == "all" else ["sms"]
        cancelled = opt_out(inbound.session, customer, scope, "STOP by SMS")
        log.info(
            "customer %s opted out of %s; %d waiting messages cancelled",
            customer.id,
            ", ".join(scope),
            cancelled,
        )
        return Taken("stop", "reply_stop")
    if inbound.intent == "start":
        opt_in(customer, CHANNELS)
        return Taken("start", "reply_start")
    return Taken("help", "reply_help")


def technician_command(inbound: Inbound) -> Taken | None:
    technician = inbound.technician
    if technician is None:
        return None
    if inbound.customer is not None and not _looks_like_command(inbound.message.body):
        return None  # a technician who is also a customer, writing as a customer
    reply = _technician(
        inbound.session, technician, inbound.message.body, inbound.now, inbound.commands
    )
    return Taken("command", text=reply)


def appointment_reply(inbound: Inbound) -> Taken | None:
    """Answers to a visit-window proposal ("1", "2", CONFIRM, RESCHEDULE) before they can
    be read as a survey score or free text; the appointments own what may be answered."""
    if inbound.visits is None or inbound.customer is None:
        return None
    answered = inbound.visits(
        inbound.session, inbound.customer, inbound.message.body, inbound.now, inbound.renderer
    )
    return None if answered is None else Taken("appointment", text=answered.reply)


def self_service_answer(inbound: Inbound) -> Taken | None:
    customer = inbound.customer
    if customer is None or inbound.intent not in ("fixed", "not_fixed"):
        return None
    pending = self_service.pending_offer(inbound.session, customer.id)
    if pending is None:
        return None  # nothing to be FIXED: a person reads it
    given: self_service.Answer = "fixed" if inbound.intent == "fixed" else "not_fixed"
    self_service.answer(
        inbound.session,
        pending.id,
        given,
        inbound.now,
        via=inbound.channel,
        default_locale=inbound.settings.default_locale,
    )
    # The outcome goes out through the outbox (self_service_result), as for the email
    # link: one message, whichever way the customer answered.
    return Taken(inbound.intent, ticket_id=pending.ticket_id)


def csat_score(inbound: Inbound) -> Taken | None:
    customer = inbound.customer
    if customer is None or inbound.intent != "csat" or inbound.score is None:
        return None
    recorded, ticket_id = _record_score(inbound.session, customer, inbound.score, inbound.now)
    if not recorded:
        return None  # a digit with no survey to answer is just a message
    return Taken("csat", "reply_csat", ticket_id=ticket_id)


def conversation(inbound: Inbound) -> Taken | None:
    customer = inbound.customer
    if customer is None:
        return None
    human = inbound.intent == "human"
    routed = route(
        inbound.message.body,
        customer.locale,
        inbound.care.routing,
        inbound.care.default_queue,
    )
    if human:
        routed = Route(inbound.care.default_queue, None)
    inbound.session.flush()
    found, opened = conversations.customer_wrote(
        inbound.session,
        customer=customer,
        body=inbound.message.body,
        channel=inbound.channel,
        route=routed,
        human=human,
        now=inbound.now,
        care=inbound.care,
        settings=inbound.settings,
        inbound_message_id=inbound.record.id,
    )
    intent = "human" if human else "text"
    if not opened and not human:
        # Joined the open conversation: the person on it answers; no automatic reply to
        # every message of an exchange (HUMAN again is answered: they want to be sure).
        return Taken(intent, ticket_id=found.ticket_id, conversation_id=found.id)
    assert found.due_at is not None
    context = {
        "task": {"id": found.id, "due": found.due_at.isoformat()},
        "conversation": {"id": found.id, "queue": found.queue, "ticket": found.ticket_id},
    }
    return Taken(
        intent, "reply_human", context, ticket_id=found.ticket_id, conversation_id=found.id
    )


STEPS: Sequence[Step] = (
    keywords,
    technician_command,
    appointment_reply,
    self_service_answer,
    csat_score,
    conversation,
)
"""The routing of an inbound SMS, in order: the first step that takes the message wins."""


def handle_sms(
    session: Session,
    message: InboundSms,
    now: datetime,
    *,
    renderer: Renderer,
    settings: NotificationSettings,
    care: CareSettings | None = None,
    commands: TechnicianCommands | None = None,
    visits: VisitReplies | None = None,
) -> str | None:
    """Act on one inbound SMS inside the caller's transaction; returns the reply, if any.

    ``commands`` handles technician messages; by default it is
    ``forewarn.ticketing.commands.handle_technician_sms`` when that module exists.
    ``visits`` answers replies to visit proposals; ``care`` routes free text to queues.
    The order is :data:`STEPS`.
    """
    seen = session.scalar(
        select(InboundMessage).where(InboundMessage.message_sid == message.message_sid)
    )
    if seen is not None:
        return seen.reply
    technician = session.scalar(select(Technician).where(Technician.phone == message.from_))
    customer = session.scalar(select(Customer).where(Customer.phone == message.from_))
    record = InboundMessage(
        provider="twilio",
        message_sid=message.message_sid,
        sender_role="unknown",
        sender_id=None,
        sender_masked=mask_phone(message.from_),
        body=message.body,
        intent="ignored",
        reply=None,
        received_at=now,
    )
    session.add(record)
    session.flush()
    if technician is None and customer is None:
        log.info("SMS from an unknown number %s ignored", record.sender_masked)
        return None
    intent, score = classify(message.body)
    inbound = Inbound(
        session=session,
        message=message,
        record=record,
        now=now,
        renderer=renderer,
        settings=settings,
        care=care or CareSettings(),
        customer=customer,
        technician=technician,
        commands=commands,
        visits=visits,
        intent=intent,
        score=score,
    )
    for step in STEPS:
        taken = step(inbound)
        if taken is not None:
            break
    else:
        return None
    if taken.intent == "command":
        assert technician is not None
        record.sender_role, record.sender_id = "technician", technician.id
    elif customer is not None:
        record.sender_role, record.sender_id = "customer", customer.id
    record.intent = taken.intent
    record.ticket_id = taken.ticket_id
    record.conversation_id = taken.conversation_id
    record.reply = taken.text if taken.event is None else _render(inbound, taken)
    session.flush()
    return record.reply


def _render(inbound: Inbound, taken: Taken) -> str | None:
    customer = inbound.customer
    assert customer is not None
    assert taken.event is not None
    context: dict[str, Any] = {
        "customer": {"name": customer.name},
        "recipient": {"name": customer.name, "timezone": customer.timezone},
        "task": None,
        "conversation": None,
        "score": inbound.score,
        **taken.context,
    }
    try:
        return inbound.renderer.render(taken.event, "sms", customer.locale, context).body
    except TemplateProblem:
        # forewarn check renders every reply; if one still fails the keyword has been
        # honoured all the same, and the customer must not get a Python error.
        log.exception("reply %s could not be rendered", taken.event)
        return None


def _looks_like_command(text: str) -> bool:
    return re.match(r"\s*(ACK|ENROUTE|DONE|NOFAULT|DECLINE|ONSITE)\b", text, re.I) is not None


def _technician(
    session: Session,
    technician: Technician,
    text: str,
    now: datetime,
    commands: TechnicianCommands | None,
) -> str:
    handler = commands or _ticketing_commands()
    if handler is not None:
        return handler(session, technician.id, text, now)
    # Ticketing cannot take commands in this build: a person must read the reply.
    open_task(
        session,
        source_key=f"technician-sms:{technician.id}:{now.isoformat()}",
        kind="technician_reply",
        customer_id=None,
        ticket_id=None,
        detail=f"Technician {technician.name} wrote: {text}",
        now=now,
        due=now + timedelta(minutes=15),
    )
    return COMMAND_NOT_AVAILABLE


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def _ticketing_commands() -> TechnicianCommands | None:
    """``forewarn.ticketing.commands.handle_technician_sms``, when ticketing ships it."""
    module = _optional("forewarn.ticketing.commands")
    handler = getattr(module, "handle_technician_sms", None) if module else None
    return cast(TechnicianCommands, handler) if callable(handler) else None


def _record_score(
    session: Session, customer: Customer, score: int, now: datetime
) -> tuple[bool, int | None]:
    """Store the score for the customer's latest unanswered survey; returns whether there
    was one to answer, and its ticket."""
    survey = session.scalar(
        select(Notification)
        .where(
            Notification.recipient_role == "customer",
            Notification.recipient_id == customer.id,
            Notification.event == SURVEY,
            Notification.sent_at > now - SURVEY_ANSWER_WITHIN,
        )
        .order_by(Notification.sent_at.desc())
        .limit(1)
    )
    if survey is None:
        return False, None
    answered = session.scalar(
        select(CsatResponse.id).where(CsatResponse.survey_notification_id == survey.id)
    )
    if answered is not None:
        return False, None
    session.add(
        CsatResponse(
            survey_notification_id=survey.id,
            customer_id=customer.id,
            ticket_id=survey.ticket_id,
            score=score,
            at=now,
        )
    )
    return True, survey.ticket_id
