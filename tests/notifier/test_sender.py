from __future__ import annotations

import multiprocessing
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.schema import NotificationSettings
from forewarn.notifier.channels import Channel, Medium, Outbound, Receipt
from forewarn.notifier.channels.sendgrid_email import SendGridEmail
from forewarn.notifier.channels.twilio_sms import TwilioSms
from forewarn.notifier.examples import example_context
from forewarn.notifier.outbox import customer_recipient, notify, technician_recipient
from forewarn.notifier.render import Renderer
from forewarn.notifier.sender import Sender
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.models import Customer, DeliveryAttempt, Notification, Technician
from tests.fakes.providers import FakeSendGrid, FakeTwilio, LocalTwilioHttpClient
from tests.notifier.conftest import (
    SENDGRID_SENDER,
    TWILIO_SENDER,
    SteppingClock,
    add_customer,
    add_technician,
)

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
MARTA_PHONE = "+351912000101"
MARTA_EMAIL = "marta@example.com"
ANA_PHONE = "+351913000202"
ANA_EMAIL = "ana@example.com"


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock(NOW)


def make_sender(
    sessions: sessionmaker[Session],
    channels: dict[str, Channel],
    clock: SteppingClock,
    *,
    worker: str = "sender-1",
    give_up_after: timedelta = timedelta(hours=24),
    retry_base: timedelta = timedelta(seconds=10),
    retry_cap: timedelta = timedelta(hours=1),
    lease: timedelta = timedelta(seconds=60),
    merge_window: timedelta = timedelta(0),
    contact_budget: int = 100,
) -> Sender:
    return Sender(
        sessions,
        channels,
        Renderer(),
        clock,
        # Merging and the contact budget have their own tests (test_contact_policy.py);
        # here every notice goes out as soon as it is due.
        NotificationSettings(
            give_up_after=give_up_after,
            retry_base=retry_base,
            retry_cap=retry_cap,
            lease=lease,
            merge_window=merge_window,
            contact_budget=contact_budget,
        ),
        worker,
        rng=random.Random(7),
    )


def notify_customer(
    sessions: sessionmaker[Session],
    clock: SteppingClock,
    *,
    key: str = "ticket-event:1",
    customer_id: str = "cust-marta",
    context: dict[str, Any] | None = None,
    critical: bool = False,
) -> None:
    with sessions.begin() as session:
        customer = session.get(Customer, customer_id)
        assert customer is not None
        notify(
            session,
            key=key,
            event="fault_notice",
            recipient=customer_recipient(customer),
            context=example_context() if context is None else context,
            now=clock.now(),
            critical=critical,
        )


def notify_technician(
    sessions: sessionmaker[Session], clock: SteppingClock, *, jobs: range = range(1042, 1043)
) -> None:
    """One work order per job number, each on SMS and email."""
    with sessions.begin() as session:
        technician = session.get(Technician, "tech-ana")
        assert technician is not None
        recipient = technician_recipient(technician)
        for job in jobs:
            context = example_context()
            context["ticket"]["id"] = job
            notify(
                session,
                key=f"ticket-event:{job}",
                event="work_order",
                recipient=recipient,
                context=context,
                now=clock.now(),
            )


def outbox(sessions: sessionmaker[Session]) -> list[Notification]:
    with sessions() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def only(sessions: sessionmaker[Session], channel: str = "sms") -> Notification:
    [row] = [row for row in outbox(sessions) if row.channel == channel]
    return row


def attempts(sessions: sessionmaker[Session], notification_id: int) -> list[DeliveryAttempt]:
    with sessions() as session:
        return list(
            session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.notification_id == notification_id)
                .order_by(DeliveryAttempt.id)
            )
        )


def outcomes(sessions: sessionmaker[Session], notification_id: int) -> list[str]:
    return [attempt.outcome for attempt in attempts(sessions, notification_id)]


# --------------------------------------------------------------------------- delivery


def test_it_delivers_a_queued_sms_and_email_through_the_providers_sdks(
    store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
    clock: SteppingClock,
) -> None:
    add_technician(store)
    notify_technician(store, clock)
    clock.advance(timedelta(seconds=2))

    tried = make_sender(store, provider_channels, clock).run_once()

    assert tried == 2
    sms, email = only(store, "sms"), only(store, "email")
    [text] = fake_twilio.messages
    [mail] = fake_sendgrid.messages
    expected_sms = Renderer().render("work_order", "sms", "en", sms.context)
    expected_email = Renderer().render("work_order", "email", "en", email.context)

    assert (text.to, text.from_) == (ANA_PHONE, TWILIO_SENDER)
    assert text.body == expected_sms.body == sms.body
    assert text.body.startswith("forewarn job #1042 (P2): inverter SunPeak 5K at Silva home.")
    assert text.num_segments == expected_sms.sms_segments
    assert (mail.to, mail.from_email) == ((ANA_EMAIL,), SENDGRID_SENDER)
    assert (mail.subject, mail.text, mail.html) == (
        expected_email.subject,
        expected_email.body,
        expected_email.html,
    )
    assert (email.subject, email.body) == (mail.subject, mail.text)
    assert mail.custom_args == {"notification_id": str(email.id)}

    for row, provider, message_id in [
        (sms, "twilio", text.sid),
        (email, "sendgrid", mail.message_id),
    ]:
        assert row.status == "sent"
        assert (row.provider, row.provider_message_id) == (provider, message_id)
        assert row.sent_at == clock.now()
        assert row.attempts == 1
        assert row.last_error is None
        [attempt] = attempts(store, row.id)
        assert (attempt.outcome, attempt.provider, attempt.provider_message_id) == (
            "sent",
            provider,
            message_id,
        )
        assert attempt.at == clock.now()


def test_it_sends_nothing_twice_when_run_again(
    sqlite_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
    clock: SteppingClock,
) -> None:
    add_technician(sqlite_store)
    notify_technician(sqlite_store, clock)
    sender = make_sender(sqlite_store, provider_channels, clock)

    assert sender.run_once() == 2
    clock.advance(timedelta(hours=2))
    assert sender.run_once() == 0

    assert (fake_twilio.requests, fake_sendgrid.requests) == (1, 1)


def test_it_sends_critical_messages_ahead_of_older_ordinary_ones(
    sqlite_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    clock: SteppingClock,
) -> None:
    for n in range(3):
        add_customer(sqlite_store, f"cust-{n}", phone=f"+35191200010{n}", channels=("sms",))
        notify_customer(sqlite_store, clock, key=f"ticket-event:{n}", customer_id=f"cust-{n}")
    add_customer(sqlite_store, "cust-urgent", phone="+351912000199", channels=("sms",))
    notify_customer(
        sqlite_store, clock, key="ticket-event:9", customer_id="cust-urgent", critical=True
    )

    assert make_sender(sqlite_store, provider_channels, clock).run_once() == 4

    assert [message.to for message in fake_twilio.messages] == [
        "+351912000199",
        "+351912000100",
        "+351912000101",
        "+351912000102",
    ]


# ------------------------------------------------------------------- transient errors


@pytest.mark.parametrize("medium", ["sms", "email"])
def test_it_keeps_a_message_queued_through_an_outage_and_sends_it_once_on_recovery(
    store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
    clock: SteppingClock,
    medium: Medium,
) -> None:
    add_customer(store, channels=(medium,))
    notify_customer(store, clock)
    fake: FakeTwilio | FakeSendGrid = fake_twilio if medium == "sms" else fake_sendgrid
    fake.fail_next(3, status=503)
    sender = make_sender(store, provider_channels, clock, retry_base=timedelta(seconds=10))

    delays = []
    for failure in range(1, 4):
        assert sender.run_once() == 1
        row = only(store, medium)
        assert row.status == "queued"
        assert row.last_error is not None
        assert "HTTP 503" in row.last_error
        assert row.next_attempt_at > clock.now()
        delays.append(row.next_attempt_at - clock.now())
        # Not before its time: a second early, nothing is tried.
        clock.set(row.next_attempt_at - timedelta(seconds=1))
        assert sender.run_once() == 0
        assert fake.requests == failure
        clock.set(row.next_attempt_at)

    assert sender.run_once() == 1

    row = only(store, medium)
    assert row.status == "sent"
    assert row.attempts == 4
    assert row.last_error is None
    assert len(fake.messages) == 1
    assert outcomes(store, row.id) == ["transient", "transient", "transient", "sent"]
    # The ceiling doubles with each attempt; the delay is drawn below it (full jitter).
    for delay, ceiling in zip(delays, (10, 20, 40), strict=True):
        assert timedelta(0) < delay <= timedelta(seconds=ceiling)


def test_it_backs_off_below_a_doubling_ceiling_but_never_beyond_the_cap(
    sqlite_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    clock: SteppingClock,
) -> None:
    add_customer(sqlite_store, channels=("sms",))
    notify_customer(sqlite_store, clock)
    fake_twilio.fail_next(9, status=503)
    sender = make_sender(
        sqlite_store,
        provider_channels,
        clock,
        retry_base=timedelta(minutes=5),
        retry_cap=timedelta(minutes=60),
    )

    delays = []
    for _ in range(9):
        assert sender.run_once() == 1
        row = only(sqlite_store)
        delays.append(row.next_attempt_at - clock.now())
        clock.set(row.next_attempt_at)

    minutes = [delay / timedelta(minutes=1) for delay in delays]
    ceilings = [5, 10, 20, 40] + [60] * 5
    for waited, ceiling in zip(minutes, ceilings, strict=True):
        assert 0 <= waited <= ceiling, minutes
    assert max(minutes[4:]) > 20  # the later ceilings are really higher
    assert sender.run_once() == 1
    assert only(sqlite_store).status == "sent"


def test_it_spreads_the_retries_of_a_burst_with_jitter(
    sqlite_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    clock: SteppingClock,
) -> None:
    for n in range(20):  # twenty customers: one customer's notices would be merged
        add_customer(sqlite_store, f"cust-{n}", phone=f"+3519120002{n:02d}", channels=("sms",))
        notify_customer(sqlite_store, clock, key=f"ticket-event:{n}", customer_id=f"cust-{n}")
    fake_twilio.fail_next(20, status=503)

    assert make_sender(sqlite_store, provider_channels, clock).run_once() == 20

    retries = [row.next_attempt_at for row in outbox(sqlite_store)]
    assert len(set(retries)) == 20
    assert all(NOW <= at <= NOW + timedelta(seconds=10) for at in retries)
    assert max(retries) - min(retries) > timedelta(seconds=5)  # spread, not a new burst


def test_it_waits_at_least_as_long_as_the_provider_asks(
    sqlite_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    clock: SteppingClock,
) -> None:
    add_customer(sqlite_store, channels=("sms",))
    notify_customer(sqlite_store, clock)
    fake_twilio.fail_next(1, status=429, retry_after=600)

    make_sender(sqlite_store, provider_channels, clock).run_once()

    row = only(sqlite_store)
    assert row.status == "queued"
    assert row.next_attempt_at == NOW + timedelta(seconds=600)


def test_it_retries_when_the_provider_cannot_be_reached(
    sqlite_store: sessionmaker[Session], refused_url: str, clock: SteppingClock
) -> None:
    add_customer(sqlite_store, channels=("email",))
    notify_customer(sqlite_store, clock)
    unreachable = SendGridEmail("SG.key", SENDGRID_SENDER, timeout=2.0, host=refused_url)

    make_sender(sqlite_store, {"email": unreachable}, clock).run_once()

    row = only(sqlite_store, "email")
    assert row.status == "queued"
    assert row.next_attempt_at > NOW
    assert row.last_error is not None
    assert "sendgrid unreachable" in row.last_error
    assert outcomes(sqlite_store, row.id) == ["transient"]


def test_it_retries_transient_errors_until_the_time_budget_and_only_then_fails(
    store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
    clock: SteppingClock,
) -> None:
    add_customer(store, channels=("sms", "email"))
    notify_customer(store, clock)
    fake_twilio.fail_next(1000, status=503)
    sender = make_sender(
        store,
        provider_channels,
        clock,
        give_up_after=timedelta(hours=2),
        retry_base=timedelta(minutes=1),
        retry_cap=timedelta(minutes=10),
    )

    while (sms := only(store, "sms")).status == "queued":
        clock.set(max(clock.now(), sms.next_attempt_at))
        assert sender.run_once() >= 1

    assert sms.status == "failed"
    assert sms.last_error is not None
    assert sms.last_error.startswith("gave up after 2h")
    assert "HTTP 503" in sms.last_error
    tried = outcomes(store, sms.id)
    assert tried[-1] == "permanent" and set(tried[:-1]) == {"transient"}
    assert len(tried) > 12  # far more than a fixed count: 2 h at most 10 min apart
    assert clock.now() - NOW >= timedelta(hours=2)
    # The budget is spent: the message goes out on the next channel instead.
    sender.drain()
    assert only(store, "email").status == "sent"
    assert len(fake_sendgrid.messages) == 1


# ------------------------------------------------------------------- permanent errors


def test_it_fails_an_invalid_number_for_good_and_falls_back_to_email(
    store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
    clock: SteppingClock,
) -> None:
    add_customer(store, channels=("sms", "email"))
    notify_customer(store, clock)
    fake_twilio.reject_number(MARTA_PHONE, code=21211)
    sender = make_sender(store, provider_channels, clock)

    assert sender.run_once() == 1

    sms, fallback = outbox(store)
    assert sms.channel == "sms"
    assert sms.status == "failed"
    assert sms.last_error is not None
    assert "invalid 'To' phone number" in sms.last_error
    assert outcomes(store, sms.id) == ["permanent"]
    assert (fallback.channel, fallback.address) == ("email", MARTA_EMAIL)
    assert (fallback.status, fallback.fallback_of) == ("queued", sms.id)
    assert fallback.next_attempt_at == NOW

    assert sender.run_once() == 1

    [mail] = fake_sendgrid.messages
    assert mail.to == (MARTA_EMAIL,)
    assert mail.subject == "We detected a problem with your inverter at Silva home"
    assert only(store, "email").status == "sent"
    clock.advance(timedelta(days=2))
    assert sender.run_once() == 0
    assert fake_twilio.requests == 1
    assert len(outbox(store)) == 2


def test_it_does_not_copy_a_technicians_message_to_a_channel_that_already_carries_it(
    sqlite_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
    clock: SteppingClock,
) -> None:
    add_technician(sqlite_store)
    notify_technician(sqlite_store, clock)
    fake_twilio.reject_number(ANA_PHONE, code=21614)

    make_sender(sqlite_store, provider_channels, clock).drain()

    assert [(row.channel, row.status) for row in outbox(sqlite_store)] == [
        ("sms", "failed"),
        ("email", "sent"),
    ]
    assert len(fake_sendgrid.messages) == 1


def test_it_fails_only_the_last_channel_when_every_channel_refuses(
    sqlite_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
    clock: SteppingClock,
) -> None:
    add_customer(sqlite_store, channels=("sms", "email"))
    notify_customer(sqlite_store, clock)
    fake_twilio.reject_number(MARTA_PHONE, code=21610)
    fake_sendgrid.reject_address(MARTA_EMAIL)

    assert make_sender(sqlite_store, provider_channels, clock).drain() == 2

    sms, email = outbox(sqlite_store)
    assert (sms.status, email.status) == ("failed", "failed")
    assert email.fallback_of == sms.id
    assert email.last_error is not None
    assert "HTTP 400" in email.last_error
    assert (fake_twilio.requests, fake_sendgrid.requests) == (1, 1)


@pytest.mark.parametrize(
    ("event_context", "reason"),
    [
        pytest.param(
            {k: v for k, v in example_context().items() if k != "site"},
            "'site' is undefined",
            id="missing variable",
        ),
        pytest.param(
            {**example_context(), "device": {**example_context()["device"], "kind": ["a", "list"]}},
            "unhashable type: 'list'",
            id="unrenderable value",
        ),
    ],
)
def test_it_records_a_template_error_on_the_row_instead_of_raising(
    store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
    clock: SteppingClock,
    event_context: dict[str, Any],
    reason: str,
) -> None:
    add_customer(store, channels=("sms",))
    notify_customer(store, clock, context=event_context)

    assert make_sender(store, provider_channels, clock).run_once() == 1

    row = only(store)
    assert row.status == "failed"
    assert row.last_error is not None
    assert row.last_error.startswith("template error: fault_notice/en (sms):")
    assert reason in row.last_error
    assert outcomes(store, row.id) == ["permanent"]
    assert (fake_twilio.requests, fake_sendgrid.requests) == (0, 0)


def test_it_fails_a_message_for_a_channel_that_is_not_configured(
    sqlite_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    clock: SteppingClock,
) -> None:
    add_customer(sqlite_store, channels=("email",))
    notify_customer(sqlite_store, clock)

    make_sender(sqlite_store, {"sms": provider_channels["sms"]}, clock).run_once()

    row = only(sqlite_store, "email")
    assert row.status == "failed"
    assert row.last_error == "no email channel is configured"


# ------------------------------------------------------------------------------ leases


class SenderKilled(BaseException):
    """The process dies mid-send: a BaseException, so nothing on the way catches it."""


class DiesWhileSending:
    provider = "twilio"
    medium: Medium = "sms"

    def send(self, message: Outbound) -> Receipt:
        raise SenderKilled


def test_it_reclaims_a_message_whose_sender_died_once_the_lease_expires(
    store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    clock: SteppingClock,
) -> None:
    add_customer(store, channels=("sms",))
    notify_customer(store, clock)
    dying = make_sender(store, {"sms": DiesWhileSending()}, clock, worker="sender-a")
    survivor = make_sender(store, provider_channels, clock, worker="sender-b")

    with pytest.raises(SenderKilled):
        dying.run_once()
    claimed = only(store)
    assert (claimed.status, claimed.claimed_by) == ("sending", "sender-a")
    assert claimed.lease_until == NOW + timedelta(seconds=60)

    clock.advance(timedelta(seconds=59))
    assert survivor.run_once() == 0
    assert fake_twilio.requests == 0

    clock.advance(timedelta(seconds=2))
    assert survivor.run_once() == 1

    row = only(store)
    assert (row.status, row.claimed_by, row.attempts) == ("sent", "sender-b", 2)
    assert len(fake_twilio.messages) == 1


def test_it_does_not_take_a_row_another_sender_holds_a_valid_lease_on(
    store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    clock: SteppingClock,
) -> None:
    add_customer(store, channels=("sms",))
    notify_customer(store, clock)
    # As if another sender had just claimed it and were still talking to Twilio.
    with store.begin() as session:
        session.execute(
            update(Notification).values(
                status="sending",
                claimed_by="sender-elsewhere",
                lease_until=NOW + timedelta(seconds=1),
                attempts=1,
            )
        )

    assert make_sender(store, provider_channels, clock).run_once() == 0

    assert only(store).claimed_by == "sender-elsewhere"
    assert fake_twilio.requests == 0


# ------------------------------------------------------------------------- quiet hours

# Bangkok is UTC+7 all year: 03:00 there is 20:00 UTC the day before.
BANGKOK_3AM = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
BANGKOK_7AM = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)


def test_it_holds_a_notice_through_the_customers_night_and_sends_it_at_seven(
    store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
) -> None:
    clock = SteppingClock(BANGKOK_3AM)
    add_customer(store, timezone="Asia/Bangkok", quiet_hours="22:00-07:00", channels=("sms",))
    notify_customer(store, clock)
    sender = make_sender(store, provider_channels, clock)
    assert only(store).next_attempt_at == BANGKOK_7AM

    clock.advance(timedelta(minutes=30))
    assert sender.run_once() == 0
    clock.set(BANGKOK_7AM - timedelta(seconds=1))
    assert sender.run_once() == 0
    assert fake_twilio.requests == 0

    clock.set(BANGKOK_7AM)
    assert sender.run_once() == 1
    assert len(fake_twilio.messages) == 1
    assert only(store).sent_at == BANGKOK_7AM


def test_it_sends_a_critical_notice_in_the_middle_of_the_night(
    sqlite_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
) -> None:
    clock = SteppingClock(BANGKOK_3AM)
    add_customer(
        sqlite_store, timezone="Asia/Bangkok", quiet_hours="22:00-07:00", channels=("sms",)
    )
    notify_customer(sqlite_store, clock, critical=True)

    assert make_sender(sqlite_store, provider_channels, clock).run_once() == 1

    assert len(fake_twilio.messages) == 1
    assert only(sqlite_store).sent_at == BANGKOK_3AM


def test_it_sends_a_message_notified_twice_only_once(
    sqlite_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    clock: SteppingClock,
) -> None:
    add_customer(sqlite_store, channels=("sms",))
    notify_customer(sqlite_store, clock, key="ticket-event:5")
    sender = make_sender(sqlite_store, provider_channels, clock)
    sender.run_once()

    notify_customer(sqlite_store, clock, key="ticket-event:5")
    clock.advance(timedelta(minutes=1))

    assert sender.run_once() == 0
    assert len(fake_twilio.messages) == 1


# ------------------------------------------------------------------------- concurrency


def assert_each_sent_exactly_once(
    sessions: sessionmaker[Session], fake_twilio: FakeTwilio, fake_sendgrid: FakeSendGrid
) -> list[Notification]:
    rows = outbox(sessions)
    assert {row.status for row in rows} == {"sent"}
    sms_bodies = Counter(message.body for message in fake_twilio.messages)
    assert sms_bodies == Counter(row.body for row in rows if row.channel == "sms")
    assert set(sms_bodies.values()) == {1}
    emailed = Counter(message.custom_args["notification_id"] for message in fake_sendgrid.messages)
    assert emailed == Counter(str(row.id) for row in rows if row.channel == "email")
    with sessions() as session:
        sent_attempts = Counter(
            session.scalars(
                select(DeliveryAttempt.notification_id).where(DeliveryAttempt.outcome == "sent")
            )
        )
    assert sent_attempts == Counter(row.id for row in rows)
    return rows


@pytest.mark.timeout(60)
def test_it_sends_each_message_exactly_once_with_senders_racing_in_threads(
    store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
    clock: SteppingClock,
) -> None:
    add_technician(store)
    notify_technician(store, clock, jobs=range(1, 101))
    senders = [make_sender(store, provider_channels, clock, worker=f"thread-{n}") for n in range(4)]
    start = threading.Barrier(len(senders))

    def drain(sender: Sender) -> int:
        start.wait(timeout=10)
        return sender.drain(limit=5)

    with ThreadPoolExecutor(len(senders)) as pool:
        tried = sum(pool.map(drain, senders))

    assert tried == 200
    rows = assert_each_sent_exactly_once(store, fake_twilio, fake_sendgrid)
    assert len(rows) == 200
    assert len({row.claimed_by for row in rows}) > 1


def drain_in_another_process(
    url: str,
    twilio: tuple[str, str, str],
    sendgrid: tuple[str, str],
    worker: str,
    ready: Any,
    go: Any,
) -> None:
    """A sender process of its own: its own engine, SDK clients and clock."""
    twilio_url, account_sid, auth_token = twilio
    sendgrid_url, api_key = sendgrid
    engine = make_engine(url)
    http = LocalTwilioHttpClient(twilio_url, timeout=5.0)
    try:
        channels: dict[str, Channel] = {
            "sms": TwilioSms(account_sid, auth_token, TWILIO_SENDER, http_client=http),
            "email": SendGridEmail(api_key, SENDGRID_SENDER, timeout=5.0, host=sendgrid_url),
        }
        sender = make_sender(make_sessionmaker(engine), channels, SteppingClock(NOW), worker=worker)
        ready.set()
        if not go.wait(30):
            raise TimeoutError("never told to start")
        sender.drain(limit=5)
    finally:
        http.close()
        engine.dispose()


@pytest.mark.timeout(90)
def test_it_sends_each_message_exactly_once_with_senders_in_two_processes_and_threads(
    postgres_url: str,
    postgres_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
    clock: SteppingClock,
) -> None:
    add_technician(postgres_store)
    notify_technician(postgres_store, clock, jobs=range(1, 151))
    # spawn, not fork: the fakes' server threads must not be copied into the children.
    spawn = multiprocessing.get_context("spawn")
    go = spawn.Event()
    processes = []
    for n in range(2):
        ready = spawn.Event()
        process = spawn.Process(
            target=drain_in_another_process,
            args=(
                postgres_url,
                (fake_twilio.base_url, fake_twilio.account_sid, fake_twilio.auth_token),
                (fake_sendgrid.base_url, fake_sendgrid.api_key),
                f"process-{n}",
                ready,
                go,
            ),
        )
        process.start()
        processes.append((process, ready))
    try:
        for _, ready in processes:
            assert ready.wait(60), "a sender process did not start"
        threads = [
            make_sender(postgres_store, provider_channels, clock, worker=f"thread-{n}")
            for n in range(2)
        ]
        with ThreadPoolExecutor(len(threads)) as pool:
            go.set()
            list(pool.map(lambda sender: sender.drain(limit=5), threads))
    finally:
        go.set()
        for process, _ in processes:
            process.join(60)
    for process, _ in processes:
        assert process.exitcode == 0
        process.close()

    rows = assert_each_sent_exactly_once(postgres_store, fake_twilio, fake_sendgrid)
    assert len(rows) == 300
    workers = Counter(row.claimed_by for row in rows)
    assert {"process-0", "process-1"} <= workers.keys(), workers
