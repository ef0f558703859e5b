"""Senders at the provider's pace: one token bucket per sending number, shared by every
sender, critical messages first, nothing sent twice, no 429 storm.

The real Twilio SDK talks to the local fake, which meters its ``From`` number on the
test's clock and answers 429 (error 20429) to anything faster, as Twilio does.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config import parse_config
from forewarn.config.schema import NotificationSettings
from forewarn.notifier.channels import Channel
from forewarn.notifier.channels.twilio_sms import TwilioSms
from forewarn.notifier.examples import example_context
from forewarn.notifier.outbox import customer_recipient, notify
from forewarn.notifier.rates import SendRate
from forewarn.notifier.render import Renderer
from forewarn.notifier.sender import Sender
from forewarn.service import send_rates
from forewarn.store.models import Customer, Notification
from tests.fakes.providers import FakeTwilio
from tests.notifier.conftest import TWILIO_SENDER, SteppingClock, add_customer

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
TOLL_FREE = 3.0
BURST = 45
CRITICAL = {f"+3519120{n:05d}" for n in range(3, BURST, 5)}


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock(NOW)


@pytest.fixture
def metered_twilio(clock: SteppingClock) -> Iterator[FakeTwilio]:
    with FakeTwilio(
        senders={TWILIO_SENDER}, clock=clock.now, rate_limits={TWILIO_SENDER: TOLL_FREE}
    ) as fake:
        yield fake


@pytest.fixture
def sms(metered_twilio: FakeTwilio) -> Iterator[dict[str, Channel]]:
    http = metered_twilio.http_client(timeout=5.0)
    yield {
        "sms": TwilioSms(
            metered_twilio.account_sid, metered_twilio.auth_token, TWILIO_SENDER, http_client=http
        )
    }
    http.close()


def senders(
    store: sessionmaker[Session],
    channels: dict[str, Channel],
    clock: SteppingClock,
    rates: dict[str, SendRate],
    count: int = 2,
) -> list[Sender]:
    settings = NotificationSettings(merge_window=timedelta(0), contact_budget=100)
    return [
        Sender(
            store,
            channels,
            Renderer(),
            clock,
            settings,
            f"sender-{n}",
            rng=random.Random(n),
            rates=rates,
        )
        for n in range(count)
    ]


def queue_burst(store: sessionmaker[Session], clock: SteppingClock) -> None:
    """One SMS notice to each of BURST customers; every fifth critical, queued among
    the others (not first)."""
    for n in range(BURST):
        add_customer(store, f"c-{n}", phone=f"+3519120{n:05d}", channels=("sms",))
    with store.begin() as session:
        for n in range(BURST):
            customer = session.get(Customer, f"c-{n}")
            assert customer is not None
            notify(
                session,
                key=f"ticket-event:{n}",
                event="fault_notice",
                recipient=customer_recipient(customer),
                context=example_context(),
                now=clock.now(),
                critical=customer.phone in CRITICAL,
            )


def test_a_burst_drains_at_the_numbers_pace_critical_first_each_once(
    store: sessionmaker[Session],
    sms: dict[str, Channel],
    metered_twilio: FakeTwilio,
    clock: SteppingClock,
) -> None:
    queue_burst(store, clock)
    rate = SendRate.of(f"twilio:{TWILIO_SENDER}", TOLL_FREE)
    pool = senders(store, sms, clock, {"sms": rate})

    for _ in range(BURST * 2):
        for sender in pool:
            sender.run_once(limit=20)
        clock.advance(timedelta(seconds=1))

    sent = [m.to for m in metered_twilio.messages]
    assert metered_twilio.throttled == 0
    assert Counter(sent) == {f"+3519120{n:05d}": 1 for n in range(BURST)}
    assert set(sent[: len(CRITICAL)]) == CRITICAL
    with store() as session:
        statuses = Counter(session.scalars(select(Notification.status)))
        attempts = session.scalar(select(func.sum(Notification.attempts)))
    assert statuses == {"sent": BURST}
    assert attempts == BURST  # no message needed a second try


def test_without_the_bucket_the_same_burst_meets_429s_and_waits_to_retry(
    store: sessionmaker[Session],
    sms: dict[str, Channel],
    metered_twilio: FakeTwilio,
    clock: SteppingClock,
) -> None:
    queue_burst(store, clock)
    (sender,) = senders(store, sms, clock, {}, count=1)

    sender.run_once(limit=20)

    assert len(metered_twilio.messages) == TOLL_FREE
    assert metered_twilio.throttled == 20 - TOLL_FREE
    with store() as session:
        waiting = session.scalars(
            select(Notification).where(Notification.status == "queued", Notification.attempts == 1)
        ).all()
    assert len(waiting) == 20 - TOLL_FREE
    assert all("20429" in (n.last_error or "") or "429" in (n.last_error or "") for n in waiting)


@pytest.mark.parametrize(
    ("twilio", "expected"),
    [
        ("{from_number: '+15005550006'}", 1.0),
        ("{from_number: '+15005550006', number_type: toll_free}", 3.0),
        ("{from_number: '+15005550006', number_type: short_code}", 100.0),
        ("{from_number: '+15005550006', number_type: short_code, rate: 30}", 30.0),
    ],
)
def test_the_pace_of_a_twilio_number_follows_its_type_unless_configured(
    twilio: str, expected: float, sms: dict[str, Channel]
) -> None:
    config = parse_config(
        f"notifications:\n  twilio: {twilio}\n",
        {"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "x"},
    )

    rates = send_rates(config, sms)

    assert rates == {"sms": SendRate("twilio:+15005550006", expected, max(1.0, expected))}
