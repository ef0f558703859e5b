"""Delivery receipts judged by the channel's verdict table, in either order with the
sender's commit: the real SDKs against the fakes, which post their signed callbacks to
the webhooks through the HTTP client (before their own answer, or later)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
from forewarn.notifier.channels.twilio_sms import TwilioSms
from forewarn.notifier.examples import example_context
from forewarn.notifier.outbox import customer_recipient, notify
from forewarn.notifier.render import Renderer
from forewarn.notifier.sender import Sender
from forewarn.notifier.webhooks import (
    SENDGRID_EVENTS_PATH,
    TWILIO_STATUS_PATH,
    WebhookKeys,
    webhook_router,
)
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
)

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
PUBLIC = "https://forewarn.example.com"
SETTINGS = NotificationSettings(
    merge_window=timedelta(0),
    retry_base=timedelta(seconds=30),
    retry_cap=timedelta(minutes=5),
)


@dataclass
class World:
    store: sessionmaker[Session]
    clock: SteppingClock
    twilio: FakeTwilio
    sendgrid: FakeSendGrid
    client: TestClient
    sender: Sender
    seen: list[str]
    """The row's status each time a callback arrived (proves the order under test)."""

    def post_twilio(self, url: str, params: dict[str, str], signature: str) -> Any:
        self.seen.extend(n.status for n in self.rows() if n.channel == "sms")
        answer = self.client.post(
            url.removeprefix(PUBLIC),
            content=urlencode(params),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                TWILIO_SIGNATURE_HEADER: signature,
            },
        )
        assert answer.status_code == 204, answer.text
        return answer

    def post_sendgrid(self, body: bytes, signature: str, timestamp: str) -> Any:
        self.seen.extend(n.status for n in self.rows() if n.channel == "email")
        answer = self.client.post(
            SENDGRID_EVENTS_PATH,
            content=body,
            headers={SENDGRID_SIGNATURE_HEADER: signature, SENDGRID_TIMESTAMP_HEADER: timestamp},
        )
        assert answer.status_code == 204, answer.text
        return answer

    def notice(self, channels: tuple[str, ...] = ("sms", "email")) -> int:
        with self.store.begin() as session:
            customer = session.get(Customer, "cust-marta")
            assert customer is not None
            customer.channels = list(channels)
            [row] = notify(
                session,
                key=f"event:{random.random()}",
                event="fault_notice",
                recipient=customer_recipient(customer),
                context=example_context(),
                now=self.clock.now(),
            )
            return row.id

    def row(self, row_id: int) -> Notification:
        with self.store() as session:
            found = session.get(Notification, row_id)
            assert found is not None
            return found

    def rows(self) -> list[Notification]:
        with self.store() as session:
            return list(session.scalars(select(Notification).order_by(Notification.id)))


@pytest.fixture
def world(sqlite_store: sessionmaker[Session], fake_twilio: FakeTwilio) -> Iterator[World]:
    clock = SteppingClock(NOW)
    add_customer(sqlite_store, channels=("sms", "email"))
    with FakeSendGrid(clock=clock.now) as sendgrid:
        app = FastAPI()
        app.include_router(
            webhook_router(
                sqlite_store,
                clock,
                SETTINGS,
                WebhookKeys(PUBLIC, fake_twilio.auth_token, sendgrid.public_key),
                Renderer(),
                rng=random.Random(5),
            )
        )
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
                sendgrid.api_key, SENDGRID_SENDER, timeout=5.0, host=sendgrid.base_url
            ),
        }
        sender = Sender(
            sqlite_store, channels, Renderer(), clock, SETTINGS, "sender-1", rng=random.Random(5)
        )
        with TestClient(app) as client:
            yield World(sqlite_store, clock, fake_twilio, sendgrid, client, sender, [])
        http.close()


ORDERS = pytest.mark.parametrize(
    "before_commit", [True, False], ids=["receipt-before-commit", "receipt-after-commit"]
)


def send_with_receipts(world: World, statuses: list[Any], before_commit: bool) -> None:
    """Send what is due; Twilio calls back before its answer or after the sender's commit."""
    world.twilio.call_back(world.post_twilio, statuses, before_reply=before_commit)
    world.sender.run_once()
    world.twilio.flush_callbacks()
    assert world.seen[0] == ("sending" if before_commit else "sent")


def settled(row: Notification) -> tuple[object, ...]:
    return (row.status, row.provider, row.sent_at, row.attempts, row.last_error)


@ORDERS
def test_a_delivered_receipt_ends_in_the_same_row_in_either_order(
    world: World, before_commit: bool
) -> None:
    row_id = world.notice(("sms",))

    send_with_receipts(world, ["sent", "delivered"], before_commit)

    row = world.row(row_id)
    [sms] = world.twilio.messages
    assert settled(row) == ("delivered", "twilio", NOW, 1, None)
    assert row.provider_message_id == sms.sid
    assert row.delivered_at == NOW


@ORDERS
def test_an_unreachable_handset_is_retried_and_delivered_later(
    world: World, before_commit: bool
) -> None:
    row_id = world.notice()

    send_with_receipts(world, [("undelivered", {"ErrorCode": "30003"})], before_commit)

    row = world.row(row_id)
    [first] = world.twilio.messages
    assert row.status == "queued"
    assert (row.provider, row.provider_message_id, row.sent_at) == ("twilio", first.sid, NOW)
    assert row.last_error is not None and "30003" in row.last_error
    assert NOW <= row.next_attempt_at <= NOW + timedelta(seconds=30)
    assert [n.channel for n in world.rows()] == ["sms"]  # no fallback for a transient code

    # A late callback about the first attempt arrives after the retry went out.
    world.clock.set(row.next_attempt_at)
    send_with_receipts(world, ["delivered"], before_commit)
    params, signature = world.twilio.status_callback(
        PUBLIC + TWILIO_STATUS_PATH + f"?notification={row_id}",
        first.sid,
        "failed",
        {"ErrorCode": "30005"},
    )
    world.post_twilio(PUBLIC + TWILIO_STATUS_PATH + f"?notification={row_id}", params, signature)

    row = world.row(row_id)
    assert row.status == "delivered"
    assert row.attempts == 2
    assert len(world.twilio.messages) == 2
    assert [n.channel for n in world.rows()] == ["sms"]


@ORDERS
@pytest.mark.parametrize("code", ["30005", "30006", "21610"])
def test_a_permanent_receipt_falls_back_to_the_next_channel(
    world: World, before_commit: bool, code: str
) -> None:
    row_id = world.notice()

    send_with_receipts(world, [("undelivered", {"ErrorCode": code})], before_commit)
    world.sender.drain()

    sms, email = world.rows()
    [sent] = world.twilio.messages
    assert (sms.id, sms.status, sms.provider_message_id, sms.sent_at) == (
        row_id,
        "undelivered",
        sent.sid,
        NOW,
    )
    assert sms.last_error is not None and f"code {code}" in sms.last_error
    assert (email.channel, email.status, email.fallback_of) == ("email", "sent", row_id)
    assert len(world.sendgrid.messages) == 1
    with world.store() as session:
        marta = session.get(Customer, "cust-marta")
        assert marta is not None
        assert marta.opted_out == (["sms"] if code == "21610" else [])


@pytest.mark.parametrize(
    ("event", "extra", "expected"),
    [
        ("bounce", {"type": "bounce", "reason": "550 5.1.1 no such user"}, "fallback"),
        ("dropped", {"reason": "Bounced Address"}, "fallback"),
        ("bounce", {"type": "blocked", "reason": "421 try later"}, "retry"),
        ("deferred", {"response": "451 greylisted"}, "wait"),
    ],
)
@ORDERS
def test_sendgrid_events_are_judged_by_the_email_channel(
    world: World,
    before_commit: bool,
    event: str,
    extra: dict[str, str],
    expected: str,
) -> None:
    row_id = world.notice(("email", "sms"))
    world.sendgrid.call_back(world.post_sendgrid, [(event, extra)], before_reply=before_commit)

    world.sender.run_once()
    world.sendgrid.flush_callbacks()
    assert world.seen == ["sending" if before_commit else "sent"]

    email = world.row(row_id)
    [mail] = world.sendgrid.messages
    assert (email.provider, email.provider_message_id, email.sent_at) == (
        "sendgrid",
        mail.message_id,
        NOW,
    )
    channels = [n.channel for n in world.rows()]
    if expected == "fallback":
        assert email.status == "bounced"
        assert channels == ["email", "sms"]
    elif expected == "retry":
        assert email.status == "queued"
        assert channels == ["email"]
    else:
        assert email.status == "sent"
        assert channels == ["email"]


def test_callbacks_can_be_posted_by_hand_too(world: World) -> None:
    post: Callable[..., Any] = world.post_twilio
    world.twilio.call_back(post, ["delivered"])
    row_id = world.notice(("sms",))
    world.sender.run_once()
    assert world.row(row_id).status == "sent"
    assert world.twilio.flush_callbacks() == 1
    assert world.row(row_id).status == "delivered"


def test_a_receipt_for_a_send_that_timed_out_saves_the_resend(
    world: World, fake_twilio: FakeTwilio
) -> None:
    # Twilio took the message but its answer was lost: the sender sees a timeout and
    # queues a retry. The delivered callback (it carries the row's id in its URL) reaches
    # us before the retry is due, so the customer does not get the message twice.
    http = fake_twilio.http_client(timeout=0.3)
    quick = TwilioSms(
        fake_twilio.account_sid,
        fake_twilio.auth_token,
        TWILIO_SENDER,
        http_client=http,
        status_callback=PUBLIC + TWILIO_STATUS_PATH,
    )
    sender = Sender(
        world.store, {"sms": quick}, Renderer(), world.clock, SETTINGS, "s-2", rng=random.Random(1)
    )
    row_id = world.notice(("sms",))
    fake_twilio.time_out_next(1, seconds=1.0, accept=True)
    fake_twilio.call_back(world.post_twilio, ["delivered"])

    sender.run_once()
    assert world.row(row_id).status == "queued"
    world.twilio.flush_callbacks()
    world.clock.advance(timedelta(minutes=10))
    sender.drain()
    http.close()

    row = world.row(row_id)
    [sms] = fake_twilio.messages
    assert (row.status, row.provider_message_id, row.provider) == ("delivered", sms.sid, "twilio")
    assert row.sent_at == NOW


@ORDERS
def test_a_late_sent_callback_does_not_cancel_the_retry_of_an_undelivered_sms(
    world: World, before_commit: bool
) -> None:
    row_id = world.notice(("sms",))

    # Twilio's callbacks come in any order: "undelivered" overtakes "sent".
    send_with_receipts(world, [("undelivered", {"ErrorCode": "30003"}), "sent"], before_commit)

    row = world.row(row_id)
    assert row.status == "queued"
    assert row.last_error is not None and "30003" in row.last_error
    world.clock.set(row.next_attempt_at)
    world.sender.run_once()
    assert len(world.twilio.messages) == 2
