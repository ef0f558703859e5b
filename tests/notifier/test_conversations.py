"""A person when asked, and free text routed by keywords: signed inbound SMS, the console
and API, the scheduled escalation, and the messages that reach the customer's phone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from forewarn.store.care import Conversation, ConversationMessage
from forewarn.store.contacts import FollowUp
from forewarn.store.models import Customer, Ticket
from tests.fakes.providers import FakeTwilio
from tests.notifier.journey import MARTA, OPS_TOKEN, SOMCHAI, Desk, desk
from tests.web.html import visible_text

SUPERVISOR = "+351913000999"
BEARER = {"Authorization": f"Bearer {OPS_TOKEN}"}


@pytest.fixture
def journey(tmp_path: Path, fake_twilio: FakeTwilio) -> Iterator[Desk]:
    yield from desk(f"sqlite:///{tmp_path / 'forewarn.db'}", fake_twilio)


def conversations(journey: Desk) -> list[Conversation]:
    with journey.app.sessions() as session:
        return list(session.scalars(select(Conversation).order_by(Conversation.id)))


def grid_fault(journey: Desk, device: str = "inv-101") -> int:
    """A critical fault (no self-service): the customer has an open ticket."""
    journey.fault(device, "E021")
    journey.send()
    with journey.app.sessions() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.device_id == device)).one()
    return ticket.id


def test_human_opens_a_conversation_ops_answer_reaches_the_phone_and_late_escalates(
    journey: Desk,
) -> None:
    ticket = grid_fault(journey)

    reply = journey.sms(MARTA, "HUMAN")

    # SLA 1 h, in Lisbon time
    assert "a person will get back to you by Wed 25 Nov 15:00 (Europe/Lisbon time)" in reply
    [opened] = conversations(journey)
    assert (opened.queue, opened.reason, opened.ticket_id) == ("general", "human", ticket)
    with journey.app.sessions() as session:
        assert session.scalars(select(FollowUp)).all() == []  # no task nobody owns

    page = journey.console(f"/conversations/{opened.id}")
    assert page.status_code == 200
    text = visible_text(page.text)
    assert "Marta Silva wrote by sms HUMAN" in text
    assert f"Ticket #{ticket} timeline" in text and "grid isolation fault" in text

    answer = journey.web.post(
        f"/api/conversations/{opened.id}/reply",
        json={"body": "Hello Marta, Rita here: the technician is on the way, about 40 minutes."},
        headers=BEARER,
    )
    assert answer.status_code == 202, answer.text
    journey.send()

    assert journey.texts_to(MARTA)[-1] == (
        "forewarn (ops): Hello Marta, Rita here: the technician is on the way, about 40 "
        "minutes. (Reply to this message to answer.)"
    )
    [answered] = conversations(journey)
    assert (answered.due_at, answered.owner) == (None, "ops")

    journey.clock.advance(minutes=5)
    assert "<Message>" not in journey.sms(MARTA, "Thanks! Can he call me before he comes?")
    [joined] = conversations(journey)
    assert joined.id == opened.id  # the same conversation, until someone closes it
    assert joined.due_at == journey.clock.now() + timedelta(hours=1)
    with journey.app.sessions() as session:
        turns = session.scalars(
            select(ConversationMessage.direction).order_by(ConversationMessage.id)
        ).all()
    assert turns == ["in", "out", "in"]

    journey.clock.advance(minutes=61)
    journey.run_jobs()

    [late] = conversations(journey)
    assert (late.escalated_to, late.status) == ("Sara Supervisor", "open")
    [alert] = [t for t in journey.texts_to(SUPERVISOR) if "conversation" in t]
    assert "Marta Silva has waited 61 min for an answer in conversation" in alert
    assert "queue general" in alert and f"ticket #{ticket}" in alert
    metrics = journey.web.get("/metrics", headers=BEARER).text
    assert 'forewarn_conversations_late{queue="general"} 1.0' in metrics
    journey.run_jobs()
    told = [t for t in journey.texts_to(SUPERVISOR) if "conversation" in t]
    assert len(told) == 1  # escalated once, not every minute
    listing = visible_text(journey.console("/conversations").text)
    assert "1 open, 1 late" in listing and "escalated to Sara Supervisor" in listing

    closed = journey.web.post(f"/api/conversations/{opened.id}/close", headers=BEARER)
    assert closed.json()["status"] == "closed"
    journey.sms(MARTA, "One more thing")
    assert len(conversations(journey)) == 2  # a closed conversation is never reopened


def test_a_billing_message_in_thai_goes_to_billing_with_the_open_ticket_attached(
    journey: Desk,
) -> None:
    ticket = grid_fault(journey, "inv-301")

    reply = journey.sms(SOMCHAI, "บิลเดือนนี้แพงผิดปกติ ช่วยตรวจสอบให้หน่อย")

    [routed] = conversations(journey)
    assert (routed.queue, routed.reason, routed.ticket_id) == ("billing", "routed", ticket)
    assert "เจ้าหน้าที่จะติดต่อกลับ" in reply  # told in Thai, in Bangkok time
    assert "25 พ.ย. 22:00 น. (เวลา Asia/Bangkok)" in reply


def test_free_text_never_attaches_a_closed_ticket(journey: Desk) -> None:
    ticket = grid_fault(journey, "inv-301")
    cancelled = journey.web.post(
        f"/api/tickets/{ticket}/commands",
        json={"command": "cancel", "note": "a false alarm"},
        headers=BEARER,
    )
    assert cancelled.status_code == 200, cancelled.text

    journey.sms(SOMCHAI, "ใบแจ้งหนี้ผิด")

    [routed] = conversations(journey)
    assert (routed.queue, routed.ticket_id) == ("billing", None)


def test_an_answer_within_minutes_of_the_customers_message_ignores_quiet_hours(
    journey: Desk,
) -> None:
    with journey.app.sessions.begin() as session:
        marta = session.get(Customer, "c-silva")
        assert marta is not None
        marta.quiet_hours = "22:00-07:00"
    journey.clock.at = journey.clock.at.replace(hour=23)  # 23:00 in Lisbon
    journey.sms(MARTA, "My bill is wrong")
    [talk] = conversations(journey)

    journey.clock.advance(minutes=5)
    journey.web.post(
        f"/api/conversations/{talk.id}/reply", json={"body": "Looking now."}, headers=BEARER
    )
    journey.clock.advance(minutes=40)  # she has gone quiet: the next answer waits for 07:00
    journey.web.post(
        f"/api/conversations/{talk.id}/reply", json={"body": "Refunded."}, headers=BEARER
    )
    journey.send()

    assert [b for b in journey.texts_to(MARTA) if "ops" in b] == [
        "forewarn (ops): Looking now. (Reply to this message to answer.)"
    ]
    journey.clock.at = journey.clock.at.replace(day=26, hour=7, minute=0)
    journey.send()
    assert journey.texts_to(MARTA)[-1].startswith("forewarn (ops): Refunded.")


def test_the_reply_form_refuses_an_empty_answer_and_a_closed_conversation(
    journey: Desk,
) -> None:
    journey.sms(MARTA, "HUMAN")
    [talk] = conversations(journey)

    empty = journey.web.post(
        f"/api/conversations/{talk.id}/reply", json={"body": ""}, headers=BEARER
    )
    assert empty.status_code == 422
    journey.web.post(f"/api/conversations/{talk.id}/close", headers=BEARER)
    late = journey.web.post(
        f"/api/conversations/{talk.id}/reply", json={"body": "hello?"}, headers=BEARER
    )
    assert late.status_code == 409
    assert journey.web.get("/api/conversations/99999", headers=BEARER).status_code == 404
