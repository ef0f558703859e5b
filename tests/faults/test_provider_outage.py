"""Provider outages delay, never drop: Twilio and SendGrid down for 30 simulated minutes.

The real SDKs talk to the local fakes; the clock is injected and stepped every 5 s, two
senders (as two processes would) claim from one store, the fakes post their signed
delivery callbacks to the webhooks through the HTTP client. Notices keep arriving before,
during and after the outage, which answers 503s, 429s with Retry-After and timeouts.
Every message must be delivered afterwards, each exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.schema import NotificationSettings
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
from forewarn.store.models import Customer, DeliveryAttempt, Notification
from tests.fakes.providers import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    TWILIO_SIGNATURE_HEADER,
    FakeSendGrid,
    FakeTwilio,
)
from tests.notifier.conftest import SteppingClock, add_customer, migrated_store

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
OUTAGE = timedelta(minutes=30)
STEP = timedelta(seconds=5)
CUSTOMERS = 40
SENDER_NUMBER = "+15005550006"


@pytest.mark.timeout(600)
def test_a_thirty_minute_outage_delays_every_message_and_drops_or_repeats_none(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = NotificationSettings(merge_window=timedelta(0))  # defaults: 24 h budget
    clock = SteppingClock(START)
    with (
        migrated_store(database_url) as store,
        FakeTwilio(senders={SENDER_NUMBER}) as twilio,
        FakeSendGrid(clock=clock.now) as sendgrid,
    ):
        for n in range(CUSTOMERS):
            add_customer(
                store,
                f"cust-{n:02d}",
                phone=f"+3519120003{n:02d}",
                email=f"customer{n}@example.com",
                channels=("sms", "email") if n % 2 else ("email", "sms"),
            )
        app = FastAPI()
        app.include_router(
            webhook_router(
                store,
                clock,
                settings,
                WebhookKeys("https://forewarn.example.com", twilio.auth_token, sendgrid.public_key),
                Renderer(),
                rng=random.Random(11),
            )
        )
        http = [twilio.http_client(timeout=0.3) for _ in range(2)]
        senders = [
            Sender(
                store,
                {
                    "sms": TwilioSms(
                        twilio.account_sid,
                        twilio.auth_token,
                        SENDER_NUMBER,
                        http_client=http[n],
                        status_callback="https://forewarn.example.com" + TWILIO_STATUS_PATH,
                    ),
                    "email": SendGridEmail(
                        sendgrid.api_key, "alerts@example.com", timeout=0.3, host=sendgrid.base_url
                    ),
                },
                Renderer(),
                clock,
                settings,
                f"sender-{n}",
                rng=random.Random(n),
            )
            for n in range(2)
        ]
        with TestClient(app) as client:

            def post_twilio(url: str, params: dict[str, str], signature: str) -> Any:
                return client.post(
                    urlsplit(url).path + "?" + urlsplit(url).query,
                    content=urlencode(params),
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        TWILIO_SIGNATURE_HEADER: signature,
                    },
                )

            def post_sendgrid(body: bytes, signature: str, timestamp: str) -> Any:
                return client.post(
                    SENDGRID_EVENTS_PATH,
                    content=body,
                    headers={
                        SENDGRID_SIGNATURE_HEADER: signature,
                        SENDGRID_TIMESTAMP_HEADER: timestamp,
                    },
                )

            twilio.call_back(post_twilio, ["sent", "delivered"])
            sendgrid.call_back(post_sendgrid, ["processed", "delivered"])

            arrivals = _arrivals()
            down_at, up_at = START + timedelta(minutes=5), START + timedelta(minutes=5) + OUTAGE
            last_sent_at = START
            while clock.now() < up_at + timedelta(hours=2):
                now = clock.now()
                for n in [n for n, at in arrivals.items() if at <= now]:
                    _notice(store, n, now)
                    del arrivals[n]
                if now == down_at:
                    twilio.go_down(503)
                    sendgrid.go_down(503)
                if now == down_at + timedelta(minutes=10):  # rate limited in the middle
                    twilio.go_down(429, retry_after=120)
                if now == down_at + timedelta(minutes=20):
                    twilio.go_down(503)
                    sendgrid.come_back()  # flaky: three requests time out, then down again
                    sendgrid.time_out_next(3, seconds=0.6)
                if now == down_at + timedelta(minutes=22):
                    sendgrid.go_down(503)
                if now == up_at:
                    twilio.come_back()
                    sendgrid.come_back()
                for sender in senders:
                    sender.run_once()
                twilio.flush_callbacks()
                sendgrid.flush_callbacks()
                if not arrivals and _undelivered(store) == 0:
                    break
                clock.advance(STEP)
            last_sent_at = clock.now()

        for client_http in http:
            client_http.close()
        rows = _rows(store)
        sms_ids = Counter(_notification_of(m.status_callback) for m in twilio.messages)
        email_ids = Counter(m.custom_args["notification_id"] for m in sendgrid.messages)
        with store() as session:
            tries = session.scalar(select(func.count()).select_from(DeliveryAttempt))

    sent = [r for r in rows if r.status == "delivered"]
    assert len(rows) == CUSTOMERS  # no fallback was needed: nothing was given up
    assert len(sent) == CUSTOMERS, Counter(r.status for r in rows)
    duplicates = sum(c - 1 for c in sms_ids.values()) + sum(c - 1 for c in email_ids.values())
    assert duplicates == 0
    assert sum(sms_ids.values()) + sum(email_ids.values()) == CUSTOMERS
    recovery = last_sent_at - up_at
    assert recovery <= settings.retry_cap + STEP  # full jitter below the cap, then due
    during = [r for r in rows if r.created_at < up_at]
    with capsys.disabled():
        print(
            f"\noutage {OUTAGE} ({database_url.split(':')[0]}): {len(rows)} messages "
            f"({len(during)} queued before the end of the outage), {len(sent)} delivered, "
            f"{duplicates} duplicates, {tries} attempts; last delivered "
            f"{recovery.total_seconds() / 60:.1f} simulated min after recovery"
        )


def _arrivals() -> dict[int, datetime]:
    """Ten notices before the outage, twenty during it, ten after it ends."""
    times = [START + timedelta(seconds=20 * n) for n in range(10)]
    times += [START + timedelta(minutes=6) + timedelta(seconds=80 * n) for n in range(20)]
    times += [START + timedelta(minutes=35, seconds=30 * n) for n in range(10)]
    return dict(enumerate(times))


def _notice(store: sessionmaker[Session], n: int, now: datetime, prefix: str = "cust-") -> None:
    with store.begin() as session:
        customer = session.get(Customer, f"{prefix}{n:02d}")
        assert customer is not None
        notify(
            session,
            key=f"ticket-event:{n}",
            event="fault_notice",
            recipient=customer_recipient(customer),
            context=example_context(),
            now=now,
        )


def _undelivered(store: sessionmaker[Session]) -> int:
    with store() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.status != "delivered")
            )
            or 0
        )


def _rows(store: sessionmaker[Session]) -> list[Notification]:
    with store() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def _notification_of(status_callback: str | None) -> str:
    assert status_callback is not None
    return parse_qs(urlsplit(status_callback).query)["notification"][0]


# ------------------------------------------------------------ the same with real processes

PROCESS_CONFIG = """
database: {{url: "{url}"}}
customers:
{customers}
notifications:
  merge_window: 0s
  retry_base: 200ms
  retry_cap: 1s
  lease: 5s
  sender_threads: 2
  # A short code (100 SMS/s): this test is about an outage and killed senders, not the
  # per-number pace, which would stretch its retries past the wait below.
  twilio: {{from_number: "{sender}", api_url: "{twilio}", timeout: 2s, number_type: short_code}}
scheduler: {{outbox_interval: 100ms}}
"""


def _start_sender(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "forewarn", "run", "-c", str(config), "--role", "sender"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.1)


@pytest.mark.timeout(180)
def test_sender_processes_killed_during_an_outage_deliver_everything_once_it_ends(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real ``forewarn run --role sender`` processes, the real Twilio SDK, the fake down;
    one sender is killed with SIGKILL in the middle of the outage and another started."""
    count = 30
    with migrated_store(database_url) as store, FakeTwilio(senders={SENDER_NUMBER}) as twilio:
        customers = "\n".join(
            f'  - {{id: c-{n:02d}, name: Customer {n}, phone: "+3519120004{n:02d}", '
            f"channels: [sms]}}"
            for n in range(count)
        )
        config = tmp_path / "forewarn.yaml"
        config.write_text(
            PROCESS_CONFIG.format(
                url=database_url,
                customers=customers,
                sender=SENDER_NUMBER,
                twilio=twilio.base_url,
            )
        )
        env = {
            **os.environ,
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": twilio.auth_token,
        }
        env.pop("FOREWARN_DATABASE_URL", None)
        log = tmp_path / "senders.log"
        twilio.go_down(503)
        first, second = _start_sender(config, env, log), None
        try:
            # forewarn syncs the customers from the config when it starts.
            _wait_for(lambda: _customers(store) == count, 30, "the sender to start")
            for n in range(count):
                _notice(store, n, datetime.now(UTC), prefix="c-")
            _wait_for(lambda: twilio.requests >= 2 * count, 30, "retries during the outage")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            second = _start_sender(config, env, log)
            time.sleep(2)  # the outage goes on; the new sender retries (and reclaims leases)
            down_requests = twilio.requests
            came_back = time.monotonic()
            twilio.come_back()
            _wait_for(lambda: len(twilio.messages) >= count, 60, "every message after the outage")
            recovered = time.monotonic() - came_back
            time.sleep(1)  # anything resent late would show up here
        finally:
            for child in (first, second):
                if child is not None and child.poll() is None:
                    child.terminate()
                    child.wait(20)
        rows = _rows(store)
        per_row = Counter(m.to for m in twilio.messages)  # one customer, one notice

    assert [r.status for r in rows] == ["sent"] * count, log.read_text()[-3000:]
    assert sum(per_row.values()) == count and set(per_row.values()) == {1}  # 0 duplicates
    with capsys.disabled():
        print(
            f"\nreal senders ({database_url.split(':')[0]}): {count} messages, "
            f"{down_requests} refused requests during the outage, one sender killed -9; "
            f"all sent {recovered:.1f} s after the provider came back, 0 duplicates"
        )


def _customers(store: sessionmaker[Session]) -> int:
    try:
        with store() as session:
            return int(session.scalar(select(func.count()).select_from(Customer)) or 0)
    except Exception:
        return 0
