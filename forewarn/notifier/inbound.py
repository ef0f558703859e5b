"""Inbound SMS: keywords, satisfaction scores, technician commands and everything else.

What a customer can write, and what happens at once:

* ``STOP`` (and the carrier-standard synonyms) opts out and cancels every waiting message;
* ``START`` opts back in; ``HELP`` answers with who we are and what they can write;
* ``HUMAN``, and any text we do not understand, opens a follow-up task for a person, due
  within the configured response time, and tells the customer so;
* ``1``..``N`` (or ``CONFIRM``) books a window of the customer's waiting visit proposal,
  ``N+1`` (or ``RESCHEDULE``, "other times") asks for the next ones;
* a digit 1-5 after a satisfaction survey is that survey's score.

A technician's message goes to ticketing (``ACK 1042``, ``DONE 1042``...). Every message
is a row in ``inbound_messages`` with what was made of it and the reply sent, keyed by
Twilio's message SID, so a webhook retried by Twilio is answered the same and acted on once.
"""

from __future__ import annotations

import importlib
import logging
import re
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from forewarn.config.schema import NotificationSettings
from forewarn.notifier.channels import InboundText
from forewarn.notifier.events import SURVEY
from forewarn.notifier.followups import open_task
from forewarn.notifier.preferences import CHANNELS, opt_in, opt_out
from forewarn.notifier.privacy import mask_phone
from forewarn.notifier.render import Renderer, TemplateProblem
from forewarn.store.contacts import CsatResponse, InboundMessage
from forewarn.store.models import Customer, Notification, Technician

log = logging.getLogger(__name__)

Intent = Literal["stop", "start", "help", "human", "csat", "text", "appointment"]

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
has no proposal waiting and no visit to move, or the text is not about one
(``forewarn.ticketing.visits.Visits.answer``)."""
COMMAND_NOT_AVAILABLE = (
    "forewarn: command not available. Your message was passed to the dispatcher."
)


def classify(text: str) -> tuple[Intent, int | None]:
    """What a customer's message asks for; the score for a bare digit 1-5."""
    normal = unicodedata.normalize("NFKC", text).strip().strip(".!?。 ").upper()
    if re.fullmatch(r"[1-5]", normal):
        return "csat", int(normal)
    return KEYWORDS.get(normal, "text"), None


InboundSms = InboundText
"""An inbound SMS as the channel's webhook parsed it."""


def handle_sms(
    session: Session,
    message: InboundSms,
    now: datetime,
    *,
    renderer: Renderer,
    settings: NotificationSettings,
    commands: TechnicianCommands | None = None,
    visits: VisitReplies | None = None,
) -> str | None:
    """Act on one inbound SMS inside the caller's transaction; returns the reply, if any.

    ``commands`` handles technician messages; by default it is
    ``forewarn.ticketing.commands.handle_technician_sms`` when that module exists.
    ``visits`` answers replies to visit proposals.

    The routing order: STOP / START / HELP, then technician commands, then an answer to
    the customer's waiting visit proposal, then a survey score, then a person.
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
    if technician is not None and (customer is None or _looks_like_command(message.body)):
        record.sender_role, record.sender_id, record.intent = "technician", technician.id, "command"
        record.reply = _technician(session, technician, message.body, now, commands)
    elif customer is not None:
        record.sender_role, record.sender_id = "customer", customer.id
        record.intent, record.reply = _customer(
            session, customer, message, now, renderer, settings, visits
        )
    else:
        log.info("SMS from an unknown number %s ignored", record.sender_masked)
    session.flush()
    return record.reply


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


def _ticketing_commands() -> TechnicianCommands | None:
    """``forewarn.ticketing.commands.handle_technician_sms``, when ticketing ships it."""
    try:
        module = importlib.import_module("forewarn.ticketing.commands")
    except ModuleNotFoundError as exc:
        if exc.name != "forewarn.ticketing.commands":
            raise
        return None
    handler = getattr(module, "handle_technician_sms", None)
    return cast(TechnicianCommands, handler) if callable(handler) else None


def _customer(
    session: Session,
    customer: Customer,
    message: InboundSms,
    now: datetime,
    renderer: Renderer,
    settings: NotificationSettings,
    visits: VisitReplies | None = None,
) -> tuple[Intent, str | None]:
    intent, score = classify(message.body)
    if intent not in ("stop", "start", "help") and visits is not None:
        # "1", "2", CONFIRM, RESCHEDULE answer a waiting visit proposal before they can
        # be read as a survey score or free text.
        answered = visits(session, customer, message.body, now, renderer)
        if answered is not None:
            return "appointment", answered.reply
    context: dict[str, Any] = {
        "customer": {"name": customer.name},
        "recipient": {"name": customer.name, "timezone": customer.timezone, "by_sms": True},
        "task": None,
        "score": score,
    }
    if intent == "stop":
        scope = list(CHANNELS) if settings.stop_scope == "all" else ["sms"]
        cancelled = opt_out(session, customer, scope, "STOP by SMS")
        log.info(
            "customer %s opted out of %s; %d waiting messages cancelled",
            customer.id,
            ", ".join(scope),
            cancelled,
        )
        event = "reply_stop"
    elif intent == "start":
        opt_in(customer, CHANNELS)
        event = "reply_start"
    elif intent == "help":
        event = "reply_help"
    elif intent == "csat" and score is not None and _record_score(session, customer, score, now):
        event = "reply_csat"
    else:
        if intent == "csat":
            intent = "text"  # a digit with no survey to answer is just a message
        task = open_task(
            session,
            source_key=f"sms:{message.message_sid}",
            kind="human" if intent == "human" else "free_text",
            customer_id=customer.id,
            ticket_id=_latest_ticket(session, customer.id),
            detail=message.body,
            now=now,
            due=now + settings.human_response_sla,
        )
        context["task"] = {"id": task.id, "due": task.due_at.isoformat()}
        event = "reply_human"
    try:
        reply = renderer.render(event, "sms", customer.locale, context).body
    except TemplateProblem:
        # forewarn check renders every reply; if one still fails the keyword has been
        # honoured all the same, and the customer must not get a Python error.
        log.exception("reply %s could not be rendered", event)
        reply = None
    return intent, reply


def _record_score(session: Session, customer: Customer, score: int, now: datetime) -> bool:
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
        return False
    answered = session.scalar(
        select(CsatResponse.id).where(CsatResponse.survey_notification_id == survey.id)
    )
    if answered is not None:
        return False
    session.add(
        CsatResponse(
            survey_notification_id=survey.id,
            customer_id=customer.id,
            ticket_id=survey.ticket_id,
            score=score,
            at=now,
        )
    )
    return True


def _latest_ticket(session: Session, customer_id: str) -> int | None:
    return session.scalar(
        select(Notification.ticket_id)
        .where(
            Notification.recipient_role == "customer",
            Notification.recipient_id == customer_id,
            Notification.ticket_id.is_not(None),
        )
        .order_by(Notification.id.desc())
        .limit(1)
    )
