"""Hostile input on the provider webhooks: refused with a 4xx, or kept with a reason, never
a 500; and a batch with one odd event keeps the others. On SQLite and PostgreSQL (whose
32-bit ids and bounded text columns are where a half-checked field used to blow up)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.schema import NotificationSettings
from forewarn.notifier.channels import Channel
from forewarn.notifier.channels.sendgrid_email import SendGridEmail
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
from forewarn.store.contacts import InboundMessage, ProviderEvent
from forewarn.store.models import Customer, Notification
from tests.fakes.providers import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    TWILIO_SIGNATURE_HEADER,
    FakeSendGrid,
    FakeTwilio,
)
from tests.notifier.conftest import SENDGRID_SENDER, SteppingClock, add_customer

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
PUBLIC = "https://forewarn.example.com"


@pytest.fixture
def client(
    store: sessionmaker[Session], fake_twilio: FakeTwilio, fake_sendgrid: FakeSendGrid
) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(
        webhook_router(
            store,
            SteppingClock(NOW),
            NotificationSettings(),
            WebhookKeys(PUBLIC, fake_twilio.auth_token, fake_sendgrid.public_key),
            Renderer(),
            rng=random.Random(3),
        )
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def form(params: dict[str, str]) -> str:
    return urlencode(params)


def post_signed_form(
    client: TestClient, fake: FakeTwilio, path: str, params: dict[str, str], query: str = ""
) -> Any:
    signature = fake.sign(PUBLIC + path + query, params)
    return client.post(
        path + query,
        content=form(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            TWILIO_SIGNATURE_HEADER: signature,
        },
    )


def status_params(fake: FakeTwilio, **fields: str) -> dict[str, str]:
    return {
        "AccountSid": fake.account_sid,
        "MessageSid": "SM" + "a" * 32,
        "MessageStatus": "delivered",
        **fields,
    }


def events(sessions: sessionmaker[Session]) -> list[ProviderEvent]:
    with sessions() as session:
        return list(session.scalars(select(ProviderEvent).order_by(ProviderEvent.id)))


@pytest.mark.parametrize(
    "query",
    ["?notification=99999999999999999999999", "?notification=2147483648", "?notification=%C2%B2"],
    ids=["huge", "past-int32", "superscript-digit"],
)
def test_a_status_callback_with_an_impossible_notification_id_is_a_400(
    client: TestClient, fake_twilio: FakeTwilio, store: sessionmaker[Session], query: str
) -> None:
    answer = post_signed_form(
        client, fake_twilio, TWILIO_STATUS_PATH, status_params(fake_twilio), query
    )

    assert answer.status_code == 400
    assert events(store) == []


@pytest.mark.parametrize("field", ["MessageSid", "MessageStatus", "ErrorCode"], ids=str.lower)
def test_a_status_callback_with_an_over_long_field_is_a_400(
    client: TestClient, fake_twilio: FakeTwilio, store: sessionmaker[Session], field: str
) -> None:
    params = status_params(fake_twilio, **{field: "9" * 5000})

    answer = post_signed_form(client, fake_twilio, TWILIO_STATUS_PATH, params)

    assert answer.status_code == 400
    assert "longer than" in answer.json()["detail"]
    assert events(store) == []


def test_a_status_callback_with_a_nul_in_a_field_is_a_400(
    client: TestClient, fake_twilio: FakeTwilio, store: sessionmaker[Session]
) -> None:
    params = status_params(fake_twilio, To="+351912000101\x00")

    assert post_signed_form(client, fake_twilio, TWILIO_STATUS_PATH, params).status_code == 400
    assert events(store) == []


@pytest.mark.parametrize("path", [TWILIO_STATUS_PATH, TWILIO_INBOUND_PATH])
def test_a_non_ascii_twilio_signature_is_a_403(
    client: TestClient, fake_twilio: FakeTwilio, path: str
) -> None:
    answer = client.post(
        path,
        content=form(status_params(fake_twilio)),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            TWILIO_SIGNATURE_HEADER: "sïgnätürë=".encode("latin-1"),  # type: ignore[dict-item]
        },
    )

    assert answer.status_code == 403


def test_an_inbound_sms_with_an_over_long_sender_is_a_400(
    client: TestClient, fake_twilio: FakeTwilio, store: sessionmaker[Session]
) -> None:
    params, signature = fake_twilio.inbound_sms(
        PUBLIC + TWILIO_INBOUND_PATH, "+" + "1" * 500, "+15005550006", "HELP"
    )
    answer = client.post(
        TWILIO_INBOUND_PATH,
        content=form(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            TWILIO_SIGNATURE_HEADER: signature,
        },
    )

    assert answer.status_code == 400
    with store() as session:
        assert session.scalars(select(InboundMessage)).all() == []


@pytest.mark.parametrize(
    ("signature", "timestamp"),
    [("sïgnätürë", None), (None, "١٧٦٤٠٦٠٨٠٠"), (None, "9" * 5000), (None, "99999999999")],
    ids=["non-ascii-signature", "arabic-digits", "huge-timestamp", "year-5138"],
)
def test_odd_sendgrid_signature_headers_are_a_403(
    client: TestClient,
    fake_sendgrid: FakeSendGrid,
    store: sessionmaker[Session],
    signature: str | None,
    timestamp: str | None,
) -> None:
    body, good_signature, good_timestamp = fake_sendgrid.signed_events(
        [], str(int(NOW.timestamp()))
    )
    answer = client.post(
        SENDGRID_EVENTS_PATH,
        content=body,
        headers={
            SENDGRID_SIGNATURE_HEADER: (signature or good_signature).encode(),  # type: ignore[dict-item]
            SENDGRID_TIMESTAMP_HEADER: (timestamp or good_timestamp).encode(),  # type: ignore[dict-item]
        },
    )

    assert answer.status_code == 403


def test_a_sendgrid_batch_keeps_the_good_events_and_the_odd_ones_with_a_reason(
    client: TestClient,
    fake_sendgrid: FakeSendGrid,
    store: sessionmaker[Session],
) -> None:
    row_id = sent_email(store, fake_sendgrid)
    [mail] = fake_sendgrid.messages
    ts = int(NOW.timestamp())
    good = [fake_sendgrid.event(mail, "processed", ts), fake_sendgrid.event(mail, "delivered", ts)]
    odd: list[Any] = [
        "not an object",
        {"event": "delivered", "email": "x@example.com"},  # no sg_event_id
        fake_sendgrid.event(mail, "open", ts, {"notification_id": "99999999999999999999"}),
        fake_sendgrid.event(mail, "open", ts, {"sg_event_id": "e" * 5000}),
        fake_sendgrid.event(mail, "open", ts, {"event": "x" * 500}),
        fake_sendgrid.event(mail, "open", ts, {"useragent": "nul\x00inside"}),
    ]
    body, signature, timestamp = fake_sendgrid.signed_events(
        [odd[0], good[0], *odd[1:], good[1]], str(ts)
    )

    answer = client.post(
        SENDGRID_EVENTS_PATH,
        content=body,
        headers={SENDGRID_SIGNATURE_HEADER: signature, SENDGRID_TIMESTAMP_HEADER: timestamp},
    )
    again = client.post(
        SENDGRID_EVENTS_PATH,
        content=body,
        headers={SENDGRID_SIGNATURE_HEADER: signature, SENDGRID_TIMESTAMP_HEADER: timestamp},
    )

    assert (answer.status_code, again.status_code) == (204, 204)
    with store() as session:
        row = session.get(Notification, row_id)
        assert row is not None and row.status == "delivered"
    stored = events(store)
    assert [e.status for e in stored if e.status != "unplaced"] == ["processed", "delivered"]
    reasons = sorted(e.outcome for e in stored if e.status == "unplaced")
    assert reasons == sorted(
        [
            "refused: an event is not a JSON object",
            "refused: sg_event_id is missing",
            "refused: notification id is not a number forewarn issued",
            "refused: sg_event_id is longer than 200 characters",
            "refused: event is longer than 32 characters",
            "refused: a field contains NUL",
        ]
    )


def sent_email(store: sessionmaker[Session], fake: FakeSendGrid) -> int:
    add_customer(store, channels=("email",))
    with store.begin() as session:
        customer = session.get(Customer, "cust-marta")
        assert customer is not None
        [row] = notify(
            session,
            key="event:1",
            event="fault_notice",
            recipient=customer_recipient(customer),
            context=example_context(),
            now=NOW,
        )
        row_id = row.id
    channels: dict[str, Channel] = {
        "email": SendGridEmail(fake.api_key, SENDGRID_SENDER, timeout=5.0, host=fake.base_url)
    }
    Sender(
        store,
        channels,
        Renderer(),
        SteppingClock(NOW),
        NotificationSettings(merge_window=timedelta(0)),
        "sender-1",
    ).drain()
    return row_id


def test_a_sendgrid_body_nested_too_deeply_is_a_400(
    client: TestClient, fake_sendgrid: FakeSendGrid, store: sessionmaker[Session]
) -> None:
    body = b"[" * 200_000 + b"]" * 200_000
    timestamp = str(int(NOW.timestamp()))
    signed = fake_sendgrid.sign_raw(body, timestamp)  # hostile, but really signed

    answer = client.post(
        SENDGRID_EVENTS_PATH,
        content=body,
        headers={SENDGRID_SIGNATURE_HEADER: signed, SENDGRID_TIMESTAMP_HEADER: timestamp},
    )

    assert answer.status_code == 400
    assert events(store) == []
