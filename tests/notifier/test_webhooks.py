"""Delivery receipts and inbound SMS, through the HTTP entry points, signed by the fakes."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.schema import NotificationSettings
from forewarn.notifier.channels import Channel
from forewarn.notifier.channels.sendgrid_email import SendGridEmail
from forewarn.notifier.channels.twilio_sms import TwilioSms
from forewarn.notifier.examples import example_context
from forewarn.notifier.outbox import customer_recipient, notify
from forewarn.notifier.render import Renderer
from forewarn.notifier.sender import Sender
from forewarn.notifier.webhooks import (
    SENDGRID_EVENTS_PATH,
    TWILIO_INBOUND_PATH,
    TWILIO_STATUS_PATH,
    WebhookKeys,
    webhook_router,
)
from forewarn.store.care import Conversation, ConversationMessage
from forewarn.store.contacts import CsatResponse, FollowUp, InboundMessage, ProviderEvent
from forewarn.store.models import Customer, Notification
from tests.fakes.providers import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    TWILIO_SIGNATURE_HEADER,
    FakeSendGrid,
    FakeTwilio,
)
from tests.notifier.conftest import (
    SENDGRID_SENDER,
    TWILIO_SENDER,
    SteppingClock,
    add_customer,
    add_technician,
)

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
PUBLIC = "https://forewarn.example.com"
MARTA = "+351912000101"
ANA = "+351913000202"
Commands = Callable[[Session, str, str, datetime], str]


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock(NOW)


@pytest.fixture
def commands_seen() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def client(
    sqlite_store: sessionmaker[Session],
    clock: SteppingClock,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
    commands_seen: list[tuple[str, str]],
) -> Iterator[TestClient]:
    """The webhooks as mounted behind a proxy: Twilio was told to call ``PUBLIC``."""

    def commands(session: Session, technician_id: str, text: str, now: datetime) -> str:
        commands_seen.append((technician_id, text))
        return f"OK {text}"

    app = FastAPI()
    app.include_router(
        webhook_router(
            sqlite_store,
            clock,
            NotificationSettings(human_response_sla=timedelta(hours=2)),
            WebhookKeys(PUBLIC, fake_twilio.auth_token, fake_sendgrid.public_key),
            Renderer(),
            commands=commands,
        )
    )
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def sent(
    sqlite_store: sessionmaker[Session],
    clock: SteppingClock,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> Iterator[Callable[[str], Notification]]:
    """Queue a notice to Marta on one channel and send it through the real SDK."""
    http = fake_twilio.http_client(timeout=5.0)
    channels: dict[str, Channel] = {
        "sms": TwilioSms(
            fake_twilio.account_sid,
            fake_twilio.auth_token,
            TWILIO_SENDER,
            http_client=http,
            status_callback=PUBLIC + TWILIO_STATUS_PATH,
        ),
        "email": SendGridEmail(
            fake_sendgrid.api_key, SENDGRID_SENDER, timeout=5.0, host=fake_sendgrid.base_url
        ),
    }
    sender = Sender(
        sqlite_store,
        channels,
        Renderer(),
        clock,
        NotificationSettings(merge_window=timedelta(0)),
        "sender-1",
        rng=random.Random(1),
    )
    count = iter(range(1000))

    def send(channel: str, event: str = "fault_notice") -> Notification:
        if not _has_marta(sqlite_store):
            add_customer(sqlite_store, phone=MARTA, channels=(channel,))
        with sqlite_store.begin() as session:
            customer = session.get(Customer, "cust-marta")
            assert customer is not None
            customer.channels = [channel]
            [row] = notify(
                session,
                key=f"event:{next(count)}",
                event=event,
                recipient=customer_recipient(customer),
                context=example_context(),
                now=clock.now(),
            )
            row_id = row.id
        sender.drain()
        return notification(sqlite_store, row_id)

    yield send
    http.close()


def _has_marta(sessions: sessionmaker[Session]) -> bool:
    with sessions() as session:
        return session.get(Customer, "cust-marta") is not None


def notification(sessions: sessionmaker[Session], row_id: int) -> Notification:
    with sessions() as session:
        row = session.get(Notification, row_id)
        assert row is not None
        return row


def customer(sessions: sessionmaker[Session], id: str = "cust-marta") -> Customer:
    with sessions() as session:
        found = session.get(Customer, id)
        assert found is not None
        return found


def post_twilio(
    client: TestClient, path: str, params: dict[str, str], signature: str, query: str = ""
) -> Any:
    return client.post(
        path + query,
        content="&".join(f"{k}={_quote(v)}" for k, v in params.items()),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            TWILIO_SIGNATURE_HEADER: signature,
        },
    )


def _quote(value: str) -> str:
    return quote_plus(value)


def status(
    client: TestClient, fake: FakeTwilio, row: Notification, state: str, **extra: str
) -> Any:
    query = f"?notification={row.id}"
    params, signature = fake.status_callback(
        PUBLIC + TWILIO_STATUS_PATH + query, str(row.provider_message_id), state, extra
    )
    return post_twilio(client, TWILIO_STATUS_PATH, params, signature, query)


def inbound(client: TestClient, fake: FakeTwilio, from_: str, body: str) -> Any:
    params, signature = fake.inbound_sms(PUBLIC + TWILIO_INBOUND_PATH, from_, TWILIO_SENDER, body)
    return post_twilio(client, TWILIO_INBOUND_PATH, params, signature)


# ------------------------------------------------------------------ Twilio status callbacks


def test_it_marks_an_sms_delivered_when_twilio_says_so(
    client: TestClient,
    fake_twilio: FakeTwilio,
    sent: Callable[[str], Notification],
    sqlite_store: sessionmaker[Session],
) -> None:
    row = sent("sms")
    assert row.status == "sent"

    assert status(client, fake_twilio, row, "delivered").status_code == 204

    after = notification(sqlite_store, row.id)
    assert after.status == "delivered"
    assert after.delivered_at == NOW


def test_it_never_moves_a_status_backwards(
    client: TestClient,
    fake_twilio: FakeTwilio,
    sent: Callable[[str], Notification],
    sqlite_store: sessionmaker[Session],
) -> None:
    row = sent("sms")
    status(client, fake_twilio, row, "delivered")
    status(client, fake_twilio, row, "sent")  # arrives late, out of order

    assert notification(sqlite_store, row.id).status == "delivered"


def test_it_applies_a_repeated_callback_once(
    client: TestClient,
    fake_twilio: FakeTwilio,
    sent: Callable[[str], Notification],
    sqlite_store: sessionmaker[Session],
) -> None:
    row = sent("sms")
    for _ in range(3):
        assert status(client, fake_twilio, row, "undelivered", ErrorCode="30005").status_code == 204

    with sqlite_store() as session:
        events = session.scalars(select(ProviderEvent)).all()
    assert [(e.status, e.error_code) for e in events] == [("undelivered", "30005")]
    assert "30005" in (notification(sqlite_store, row.id).last_error or "")


def test_it_refuses_a_forged_status_callback(
    client: TestClient,
    fake_twilio: FakeTwilio,
    sent: Callable[[str], Notification],
    sqlite_store: sessionmaker[Session],
) -> None:
    row = sent("sms")
    query = f"?notification={row.id}"
    params, signature = fake_twilio.status_callback(
        PUBLIC + TWILIO_STATUS_PATH + query, str(row.provider_message_id), "sent"
    )
    params["MessageStatus"] = "delivered"  # tampered after signing

    forged = post_twilio(client, TWILIO_STATUS_PATH, params, signature, query)
    unsigned = post_twilio(client, TWILIO_STATUS_PATH, params, "", query)

    assert (forged.status_code, unsigned.status_code) == (403, 403)
    assert notification(sqlite_store, row.id).status == "sent"


def test_it_refuses_a_callback_signed_for_another_url(
    client: TestClient, fake_twilio: FakeTwilio, sent: Callable[[str], Notification]
) -> None:
    row = sent("sms")
    params, signature = fake_twilio.status_callback(
        "https://attacker.example.com" + TWILIO_STATUS_PATH, str(row.provider_message_id), "sent"
    )
    assert post_twilio(client, TWILIO_STATUS_PATH, params, signature).status_code == 403


def test_it_treats_twilio_error_21610_as_an_opt_out(
    client: TestClient,
    fake_twilio: FakeTwilio,
    sent: Callable[[str], Notification],
    sqlite_store: sessionmaker[Session],
) -> None:
    row = sent("sms")
    status(client, fake_twilio, row, "failed", ErrorCode="21610")

    assert customer(sqlite_store).opted_out == ["sms"]
    assert notification(sqlite_store, row.id).status == "undelivered"


# ------------------------------------------------------------------ SendGrid event webhook


def post_events(
    client: TestClient, fake: FakeSendGrid, events: list[dict[str, Any]], at: datetime = NOW
) -> Any:
    body, signature, timestamp = fake.signed_events(events, str(int(at.timestamp())))
    return client.post(
        SENDGRID_EVENTS_PATH,
        content=body,
        headers={
            "Content-Type": "application/json",
            SENDGRID_SIGNATURE_HEADER: signature,
            SENDGRID_TIMESTAMP_HEADER: timestamp,
        },
    )


def test_it_records_sendgrid_delivery_and_bounce_events(
    client: TestClient,
    fake_sendgrid: FakeSendGrid,
    sent: Callable[[str], Notification],
    sqlite_store: sessionmaker[Session],
) -> None:
    delivered, bounced = sent("email"), sent("email")
    [first, second] = fake_sendgrid.messages
    ts = int(NOW.timestamp())

    answer = post_events(
        client,
        fake_sendgrid,
        [
            fake_sendgrid.event(first, "processed", ts),
            fake_sendgrid.event(first, "delivered", ts),
            fake_sendgrid.event(second, "bounce", ts, {"reason": "550 no such user"}),
        ],
    )

    assert answer.status_code == 204
    assert notification(sqlite_store, delivered.id).status == "delivered"
    assert notification(sqlite_store, bounced.id).status == "bounced"


def test_it_ignores_a_redelivered_sendgrid_event(
    client: TestClient,
    fake_sendgrid: FakeSendGrid,
    sent: Callable[[str], Notification],
    sqlite_store: sessionmaker[Session],
) -> None:
    sent("email")
    [mail] = fake_sendgrid.messages
    event = fake_sendgrid.event(mail, "delivered", int(NOW.timestamp()))
    post_events(client, fake_sendgrid, [event])
    post_events(client, fake_sendgrid, [event, event])

    with sqlite_store() as session:
        assert len(session.scalars(select(ProviderEvent)).all()) == 1


def test_it_refuses_a_stale_or_tampered_sendgrid_post(
    client: TestClient,
    fake_sendgrid: FakeSendGrid,
    sent: Callable[[str], Notification],
    sqlite_store: sessionmaker[Session],
) -> None:
    row = sent("email")
    [mail] = fake_sendgrid.messages
    events = [fake_sendgrid.event(mail, "delivered", int(NOW.timestamp()))]

    stale = post_events(client, fake_sendgrid, events, at=NOW - timedelta(minutes=10))
    body, signature, timestamp = fake_sendgrid.signed_events(events, str(int(NOW.timestamp())))
    tampered = client.post(
        SENDGRID_EVENTS_PATH,
        content=body.replace(b"delivered", b"bounce"),
        headers={SENDGRID_SIGNATURE_HEADER: signature, SENDGRID_TIMESTAMP_HEADER: timestamp},
    )
    garbage = client.post(
        SENDGRID_EVENTS_PATH,
        content=body,
        headers={SENDGRID_SIGNATURE_HEADER: "not base64!", SENDGRID_TIMESTAMP_HEADER: timestamp},
    )

    assert [stale.status_code, tampered.status_code, garbage.status_code] == [403, 403, 403]
    assert notification(sqlite_store, row.id).status == "sent"


def test_an_unsubscribe_event_opts_the_customer_out_of_email(
    client: TestClient,
    fake_sendgrid: FakeSendGrid,
    sent: Callable[[str], Notification],
    sqlite_store: sessionmaker[Session],
) -> None:
    sent("email")
    [mail] = fake_sendgrid.messages
    post_events(client, fake_sendgrid, [fake_sendgrid.event(mail, "unsubscribe", 0)])

    assert customer(sqlite_store).opted_out == ["email"]


# ------------------------------------------------------------------ inbound SMS


def reply_of(answer: Any) -> str:
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/xml")
    text: str = answer.text
    return text


def test_stop_opts_out_at_once_and_cancels_what_was_waiting(
    client: TestClient,
    fake_twilio: FakeTwilio,
    sqlite_store: sessionmaker[Session],
    clock: SteppingClock,
) -> None:
    add_customer(sqlite_store, phone=MARTA, locale="th", quiet_hours="00:00-23:59")
    with sqlite_store.begin() as session:
        marta = session.get(Customer, "cust-marta")
        assert marta is not None
        notify(
            session,
            key="e1",
            event="fault_notice",
            recipient=customer_recipient(marta),
            context=example_context(),
            now=NOW,
        )

    answer = reply_of(inbound(client, fake_twilio, MARTA, " stop "))

    assert "START" in answer and "forewarn" in answer
    assert "คุณจะไม่ได้รับข้อความจากเราอีก" in answer  # in her language
    assert customer(sqlite_store).opted_out == ["email", "sms"]
    with sqlite_store() as session:
        assert {n.status for n in session.scalars(select(Notification))} == {"cancelled"}


def test_start_opts_back_in(
    client: TestClient, fake_twilio: FakeTwilio, sqlite_store: sessionmaker[Session]
) -> None:
    add_customer(sqlite_store, phone=MARTA, opted_out=("sms", "email"))
    reply_of(inbound(client, fake_twilio, MARTA, "START"))
    assert customer(sqlite_store).opted_out == []


def test_help_answers_with_the_keywords(
    client: TestClient, fake_twilio: FakeTwilio, sqlite_store: sessionmaker[Session]
) -> None:
    add_customer(sqlite_store, phone=MARTA, locale="zh-Hant")
    answer = reply_of(inbound(client, fake_twilio, MARTA, "help"))
    assert "HUMAN" in answer and "STOP" in answer and "聯絡真人客服" in answer


@pytest.mark.parametrize(
    ("text", "queue", "reason"),
    [
        ("HUMAN", "general", "human"),
        ("My inverter is beeping, is that you?", "technical", "routed"),
    ],
)
def test_human_or_free_text_opens_a_conversation_with_a_person_and_says_so(
    client: TestClient,
    fake_twilio: FakeTwilio,
    sqlite_store: sessionmaker[Session],
    text: str,
    queue: str,
    reason: str,
) -> None:
    add_customer(sqlite_store, phone=MARTA)

    answer = reply_of(inbound(client, fake_twilio, MARTA, text))

    with sqlite_store() as session:
        [conversation] = session.scalars(select(Conversation)).all()
        [said] = session.scalars(select(ConversationMessage)).all()
        assert session.scalars(select(FollowUp)).all() == []  # no task nobody owns
    assert (conversation.customer_id, conversation.status) == ("cust-marta", "open")
    assert (conversation.queue, conversation.reason) == (queue, reason)
    assert conversation.due_at == NOW + timedelta(hours=2)
    assert (said.direction, said.body) == ("in", text)
    assert "a person will get back to you by 2026-11-25 11:00" in answer  # Lisbon = UTC


def test_a_digit_after_a_survey_is_its_score(
    client: TestClient,
    fake_twilio: FakeTwilio,
    sent: Callable[..., Notification],
    sqlite_store: sessionmaker[Session],
) -> None:
    survey = sent("sms", "satisfaction_survey")

    answer = reply_of(inbound(client, fake_twilio, MARTA, "4"))

    with sqlite_store() as session:
        [score] = session.scalars(select(CsatResponse)).all()
        assert session.scalars(select(FollowUp)).all() == []
    assert (score.survey_notification_id, score.score) == (survey.id, 4)
    assert "4/5" in answer


def test_a_digit_with_no_survey_is_read_by_a_person(
    client: TestClient, fake_twilio: FakeTwilio, sqlite_store: sessionmaker[Session]
) -> None:
    add_customer(sqlite_store, phone=MARTA)
    reply_of(inbound(client, fake_twilio, MARTA, "3"))
    with sqlite_store() as session:
        assert session.scalars(select(CsatResponse)).all() == []
        [conversation] = session.scalars(select(Conversation)).all()
    assert conversation.reason == "text"


def test_a_technician_command_goes_to_ticketing(
    client: TestClient,
    fake_twilio: FakeTwilio,
    sqlite_store: sessionmaker[Session],
    commands_seen: list[tuple[str, str]],
) -> None:
    add_technician(sqlite_store, phone=ANA)

    answer = reply_of(inbound(client, fake_twilio, ANA, "ACK 1042"))

    assert commands_seen == [("tech-ana", "ACK 1042")]
    assert "OK ACK 1042" in answer


def test_a_retried_inbound_webhook_is_acted_on_once(
    client: TestClient, fake_twilio: FakeTwilio, sqlite_store: sessionmaker[Session]
) -> None:
    add_customer(sqlite_store, phone=MARTA)
    params, signature = fake_twilio.inbound_sms(
        PUBLIC + TWILIO_INBOUND_PATH, MARTA, TWILIO_SENDER, "HUMAN"
    )
    first = post_twilio(client, TWILIO_INBOUND_PATH, params, signature)
    again = post_twilio(client, TWILIO_INBOUND_PATH, params, signature)

    assert first.text == again.text
    with sqlite_store() as session:
        assert len(session.scalars(select(ConversationMessage)).all()) == 1
        assert len(session.scalars(select(InboundMessage)).all()) == 1


def test_a_forged_inbound_sms_changes_nothing(
    client: TestClient, fake_twilio: FakeTwilio, sqlite_store: sessionmaker[Session]
) -> None:
    add_customer(sqlite_store, phone=MARTA)
    params, _ = fake_twilio.inbound_sms(PUBLIC + TWILIO_INBOUND_PATH, MARTA, TWILIO_SENDER, "HI")
    params["Body"] = "STOP"
    _, signature = fake_twilio.inbound_sms(PUBLIC + TWILIO_INBOUND_PATH, MARTA, TWILIO_SENDER, "HI")

    assert post_twilio(client, TWILIO_INBOUND_PATH, params, signature).status_code == 403
    assert customer(sqlite_store).opted_out == []


def test_the_inbound_body_is_kept_but_the_number_is_masked(
    client: TestClient, fake_twilio: FakeTwilio, sqlite_store: sessionmaker[Session]
) -> None:
    add_customer(sqlite_store, phone=MARTA)
    reply_of(inbound(client, fake_twilio, MARTA, "HELP"))
    with sqlite_store() as session:
        [message] = session.scalars(select(InboundMessage)).all()
    assert (message.intent, message.sender_id) == ("help", "cust-marta")
    assert MARTA not in message.sender_masked
    assert json.dumps(message.reply)  # the reply given is on the row
