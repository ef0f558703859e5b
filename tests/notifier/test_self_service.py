"""Self-service first: a minor fault with customer-safe steps, answered FIXED or not,
through telemetry, signed inbound SMS, the email link and the scheduled check."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from forewarn.notifier.examples import example_context
from forewarn.notifier.render import Renderer
from forewarn.store.care import SelfServiceOffer
from forewarn.store.models import Notification
from tests.fakes.providers import FakeTwilio
from tests.notifier.journey import ANA, MARTA, SOMCHAI, Desk, desk


@pytest.fixture
def journey(tmp_path: Path, fake_twilio: FakeTwilio) -> Iterator[Desk]:
    yield from desk(f"sqlite:///{tmp_path / 'forewarn.db'}", fake_twilio)


def overheats(journey: Desk, device: str = "inv-101") -> None:
    journey.readings(device, "temperature", 86, minutes=2)
    journey.send()


def offer(journey: Desk) -> SelfServiceOffer:
    with journey.app.sessions() as session:
        return session.scalars(select(SelfServiceOffer)).one()


def test_a_minor_fault_offers_the_steps_first_and_fixed_closes_it_without_a_visit(
    journey: Desk,
) -> None:
    overheats(journey)

    [notice] = journey.texts_to(MARTA)
    assert "rinse the air filter behind the front grille" in notice
    assert "reply FIXED (or NOT FIXED)" in notice
    assert "with no answer by 2026-11-25 16:00 (Europe/Lisbon)" in notice
    ticket = journey.ticket()
    assert (ticket.status, ticket.technician_id) == ("assigned", "t-ana")  # still booked

    journey.readings("inv-101", "temperature", 62, minutes=3)  # the filter was clogged
    reply = journey.sms(MARTA, "fixed")
    journey.send()

    assert "<Message>" not in reply  # the outcome comes as one message, from the outbox
    closed = journey.ticket()
    assert (closed.status, closed.closure_code) == ("closed", "self_service")
    assert closed.open_fingerprint is None  # the technician's load is released
    assert "is back to normal, so the technician visit is cancelled" in journey.texts_to(MARTA)[-1]
    cancelled = journey.outbox("job_cancelled")
    assert {(n.recipient_id, n.context["reason"]) for n in cancelled} == {
        ("t-ana", "the customer fixed it (self-service)")
    }
    assert any("cancel" in body.lower() for body in journey.texts_to(ANA))
    assert (offer(journey).status, offer(journey).outcome) == ("resolved", "fixed")
    # Nobody is surveyed about a visit that never happened.
    assert journey.outbox("satisfaction_survey") == []


def test_fixed_while_the_readings_still_breach_keeps_the_visit_and_says_so(journey: Desk) -> None:
    overheats(journey)

    journey.sms(MARTA, "FIXED")
    journey.send()

    assert (
        "not reporting normal readings yet; we keep watching it until 2026-11-25 14:32"
        in (journey.texts_to(MARTA)[-1])
    )
    journey.readings("inv-101", "temperature", 85, minutes=31)  # still hot at the deadline
    journey.run_jobs()

    ticket = journey.ticket()
    assert ticket.status == "assigned" and ticket.technician_id == "t-ana"
    assert (
        "still reports the problem after the steps, so the technician visit goes ahead"
        in (journey.texts_to(MARTA)[-1])
    )
    assert (offer(journey).status, offer(journey).outcome) == ("kept", "still_breaching")
    assert journey.outbox("job_cancelled") == []


def test_fixed_closes_it_when_the_readings_come_back_within_the_settle_time(
    journey: Desk,
) -> None:
    overheats(journey)
    journey.sms(MARTA, "FIXED")
    journey.readings("inv-101", "temperature", 60, minutes=10)  # cools down after the rinse

    journey.run_jobs()

    assert journey.ticket().closure_code == "self_service"
    assert offer(journey).outcome == "fixed"


def test_not_fixed_and_silence_keep_the_visit_in_the_customers_language(journey: Desk) -> None:
    overheats(journey, "inv-301")  # Somchai reads Thai, in Bangkok
    [notice] = journey.texts_to(SOMCHAI)
    assert "ล้างแผ่นกรองอากาศ" in notice and "ตอบ FIXED" in notice
    assert "(Asia/Bangkok)" in notice

    journey.sms(SOMCHAI, "not fixed")
    journey.send()

    assert "ช่างจะเข้าไปดู" in journey.texts_to(SOMCHAI)[-1]
    assert offer(journey).outcome == "not_fixed"
    assert journey.ticket().status == "assigned"


def test_no_answer_by_the_deadline_keeps_the_visit(journey: Desk) -> None:
    overheats(journey)
    journey.clock.advance(hours=2)

    journey.run_jobs()

    assert offer(journey).outcome == "no_answer"
    assert "We did not hear back about the steps" in journey.texts_to(MARTA)[-1]
    journey.sms(MARTA, "FIXED")  # too late: a person reads it
    assert journey.ticket().status == "assigned"


def test_the_signed_email_link_answers_only_after_the_button_and_only_when_genuine(
    journey: Desk,
) -> None:
    overheats(journey)
    with journey.app.sessions() as session:
        email = session.scalars(
            select(Notification).where(
                Notification.event == "self_service_offer", Notification.channel == "email"
            )
        ).all()
        assert email == []  # Marta prefers SMS: the link is in the email we would send
        row = session.scalars(
            select(Notification).where(Notification.event == "self_service_offer")
        ).one()
    link = row.context["self_service"]["link_fixed"]
    path = link.removeprefix("https://forewarn.example.com")
    journey.readings("inv-101", "temperature", 60, minutes=3)

    page = journey.web.get(path)  # what a mail scanner does: nothing may change
    assert page.status_code == 200 and "Send my answer" in page.text
    assert offer(journey).status == "offered"
    forged = journey.web.post(re.sub(r"sig=\w+", "sig=" + "0" * 32, path))
    assert forged.status_code == 403
    assert offer(journey).status == "offered"

    done = journey.web.post(path)

    assert done.status_code == 200 and "your answer was received" in done.text
    assert (offer(journey).outcome, offer(journey).answered_by) == ("fixed", "email")
    assert journey.ticket().closure_code == "self_service"
    assert journey.web.post(path).status_code == 409  # settled: the link changes nothing


@pytest.mark.parametrize("locale", ["en", "pt", "zh-Hans", "zh-Hant", "th"])
def test_the_offer_promises_no_booked_technician_while_none_is_assigned(locale: str) -> None:
    context = {**example_context(), "technician": None}

    body = Renderer().render("self_service_offer", "sms", locale, context).body
    booked = Renderer().render("self_service_offer", "sms", locale, example_context()).body

    assert "Ana Costa" not in body and "Ana Costa" in booked
    if locale == "en":
        assert "We keep arranging a technician until we hear from you" in body
