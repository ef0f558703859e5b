"""Outbox throughput: a burst of notifications through the real SDKs to local fake providers.

    python benchmarks/notify.py --messages 4000 --processes 1 2 4

Method. A scratch PostgreSQL database gets ``--messages`` queued rows (half SMS, half
email, one customer each, event ``ticket_resolved``: a follow-up, so neither the merge
window nor the contact budget holds it back). Then P sender processes start together;
each runs forewarn's :class:`Sender` (claims with ``FOR UPDATE SKIP LOCKED`` and
compare-and-set, renders the Jinja2 template, sends through ``twilio.rest.Client`` or
``SendGridAPIClient``, records the outcome) until nothing is due. The clock runs from
the start signal until the last process is done.

The fake Twilio and the fake SendGrid each run in a process of their own, so the figure
measures forewarn's senders, not the fakes competing with them for one interpreter lock.
Each sender process sends on ``--threads`` threads (a :class:`SenderPool`, as the
``notifications.sender_threads`` setting does in ``forewarn run``).

Duplicates are counted at the providers: the fake Twilio sees the notification id in the
status callback URL, the fake SendGrid in ``custom_args``; every id seen more than once is
a message a customer would have received twice. The run fails if any row is not ``sent``
or any duplicate is found.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select

from forewarn.clock import SystemClock
from forewarn.config.schema import NotificationSettings
from forewarn.notifier.channels import Channel
from forewarn.notifier.channels.sendgrid_email import SendGridEmail
from forewarn.notifier.channels.twilio_sms import TwilioSms
from forewarn.notifier.examples import example_context
from forewarn.notifier.render import Renderer
from forewarn.notifier.sender import Sender, SenderPool
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.models import Customer, Notification
from forewarn.store.schema import upgrade
from tests.fakes.providers import FakeSendGrid, FakeTwilio, LocalTwilioHttpClient
from tests.services import scratch_postgres

SENDER_NUMBER = "+15005550006"
CALLBACK = "https://forewarn.example.com/webhooks/twilio/status"


def seed(url: str, messages: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    context = example_context()
    customers, rows = [], []
    for n in range(messages):
        channel = "sms" if n % 2 == 0 else "email"
        customer_id = f"cust-{n}"
        phone, email = f"+3519{n:08d}", f"c{n}@example.com"
        customers.append(
            {
                "id": customer_id,
                "name": f"Customer {n}",
                "phone": phone,
                "email": email,
                "locale": "en",
                "timezone": "Europe/Lisbon",
                "channels": [channel],
                "quiet_hours": None,
                "opted_out": [],
            }
        )
        rows.append(
            {
                "dedupe_key": f"bench:{n}",
                "ticket_id": None,
                "event": "ticket_resolved",
                "recipient_role": "customer",
                "recipient_id": customer_id,
                "channel": channel,
                "address": phone if channel == "sms" else email,
                "locale": "en",
                "context": {
                    **context,
                    "recipient": {"name": f"Customer {n}", "timezone": "Europe/Lisbon"},
                },
                "critical": False,
                "status": "queued",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    with engine.begin() as connection:
        connection.execute(insert(Customer), customers)
        connection.execute(insert(Notification), rows)
    engine.dispose()


def run_sender(
    url: str,
    twilio: tuple[str, str, str],
    sendgrid: tuple[str, str],
    worker: str,
    threads: int,
    start: multiprocessing.synchronize.Event,
) -> None:  # type: ignore[name-defined]
    account_sid, auth_token, twilio_url = twilio
    api_key, sendgrid_url = sendgrid
    engine = make_engine(url)
    http = LocalTwilioHttpClient(twilio_url, timeout=10.0)
    channels: dict[str, Channel] = {
        "sms": TwilioSms(
            account_sid, auth_token, SENDER_NUMBER, http_client=http, status_callback=CALLBACK
        ),
        "email": SendGridEmail(api_key, "alerts@forewarn.example.com", host=sendgrid_url),
    }
    sessions = make_sessionmaker(engine)
    settings = NotificationSettings(sender_threads=threads)
    pool = SenderPool(
        [
            Sender(sessions, channels, Renderer(), SystemClock(), settings, f"{worker}/{i}")
            for i in range(threads)
        ]
    )
    start.wait()
    pool.drain(limit=20)
    pool.close()
    http.close()
    engine.dispose()


def serve_fake(provider: str, conn: Connection) -> None:
    """Run one fake provider until told to stop; answer with the notification ids it saw."""
    if provider == "twilio":
        with FakeTwilio(senders={SENDER_NUMBER}) as twilio:
            conn.send((twilio.account_sid, twilio.auth_token, twilio.base_url))
            conn.recv()
            conn.send(
                [
                    parse_qs(urlsplit(m.status_callback or "").query)["notification"][0]
                    for m in twilio.messages
                ]
            )
    else:
        with FakeSendGrid() as sendgrid:
            conn.send((sendgrid.api_key, sendgrid.base_url))
            conn.recv()
            conn.send([m.custom_args["notification_id"] for m in sendgrid.messages])


def one_run(messages: int, processes: int, threads: int) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    fakes = {}
    for provider in ("twilio", "sendgrid"):
        ours, theirs = context.Pipe()
        process = context.Process(target=serve_fake, args=(provider, theirs), daemon=True)
        process.start()
        fakes[provider] = (process, ours)
    twilio = fakes["twilio"][1].recv()
    sendgrid = fakes["sendgrid"][1].recv()
    with scratch_postgres() as url:
        seed(url, messages)
        start = context.Event()
        workers = [
            context.Process(
                target=run_sender,
                args=(
                    url,
                    twilio,
                    sendgrid,
                    f"bench-{i}",
                    threads,
                    start,
                ),
            )
            for i in range(processes)
        ]
        for worker in workers:
            worker.start()
        time.sleep(2.0)  # let every process import and connect before the clock starts
        began = time.perf_counter()
        start.set()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - began
        ids: Counter[str] = Counter()
        for process, conn in fakes.values():
            conn.send("stop")
            ids.update(conn.recv())
            process.join()
        engine = make_engine(url)
        with engine.connect() as connection:
            statuses = dict(
                connection.execute(
                    select(Notification.status, func.count()).group_by(Notification.status)
                ).all()
            )
        engine.dispose()
    duplicates = sum(count - 1 for count in ids.values())
    return {
        "processes": processes,
        "seconds": elapsed,
        "rate": messages / elapsed,
        "delivered": len(ids),
        "duplicates": duplicates,
        "not_sent": messages - statuses.get("sent", 0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--threads", type=int, default=4, help="sender threads per process")
    args = parser.parse_args()
    print(
        f"{args.messages} notifications (half SMS via twilio-python, half email via "
        f"sendgrid-python) to local fakes, PostgreSQL outbox"
    )
    print(
        f"{'processes':>9}  {'seconds':>8}  {'msg/s':>7}  {'delivered':>9}  "
        f"{'duplicates':>10}  {'not sent':>8}"
    )
    failed = False
    for processes in args.processes:
        r = one_run(args.messages, processes, args.threads)
        print(
            f"{r['processes']:>9}  {r['seconds']:>8.2f}  {r['rate']:>7.0f}  "
            f"{r['delivered']:>9}  {r['duplicates']:>10}  {r['not_sent']:>8}"
        )
        failed |= r["duplicates"] > 0 or r["not_sent"] > 0 or r["delivered"] != args.messages
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
