"""Merging, the contact budget, quiet hours, opt-outs before sending, and no orphan notices."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.schema import NotificationSettings
from forewarn.notifier.channels import Channel
from forewarn.notifier.examples import example_context
from forewarn.notifier.followups import check_overdue, notify_customer_update
from forewarn.notifier.outbox import customer_recipient, notify
from forewarn.notifier.policy import within_budget
from forewarn.notifier.render import Renderer
from forewarn.notifier.sender import Sender
from forewarn.store.contacts import FollowUp
from forewarn.store.models import Customer, Notification, Ticket
from tests.fakes.providers import FakeTwilio
from tests.notifier.conftest import SteppingClock, add_customer

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
MARTA = "+351912000101"


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock(NOW)


def sender(
    sessions: sessionmaker[Session],
    channels: dict[str, Channel],
    clock: SteppingClock,
    *,
    budget: int = 3,
    merge_window: timedelta = timedelta(minutes=2),
) -> Sender:
    return Sender(
        sessions,
        channels,
        Renderer(),
        clock,
        NotificationSettings(contact_budget=budget, merge_window=merge_window),
        "sender-1",
        rng=random.Random(3),
    )


def add_ticket(sessions: sessionmaker[Session], ticket_id: int) -> None:
    with sessions.begin() as session:
        if session.get(Ticket, ticket_id) is not None:
            return
        session.add(
            Ticket(
                id=ticket_id,
                kind="repair",
                fingerprint=f"repair:dev-{ticket_id}",
                open_fingerprint=f"repair:dev-{ticket_id}",
                status="open",
                priority="P2",
                title="fault",
                customer_id="cust-marta",
                opened_at=NOW,
                updated_at=NOW,
            )
        )


def fault_notice(
    sessions: sessionmaker[Session],
    clock: SteppingClock,
    ticket_id: int,
    *,
    device: tuple[str, str] = ("inv-101", "inverter"),
    critical: bool = False,
) -> int:
    """A fault notice to Marta about ``device`` (id, kind), as ticketing queues it."""
    add_ticket(sessions, ticket_id)
    context = example_context()
    context["ticket"]["id"] = ticket_id
    context["device"] |= {"id": device[0], "kind": device[1]}
    with sessions.begin() as session:
        marta = session.get(Customer, "cust-marta")
        assert marta is not None
        [row] = notify(
            session,
            key=f"ticket-event:{ticket_id}",
            event="fault_notice",
            recipient=customer_recipient(marta),
            context=context,
            now=clock.now(),
            ticket_id=ticket_id,
            critical=critical,
        )
        return row.id


def rows(sessions: sessionmaker[Session]) -> list[Notification]:
    with sessions() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def test_three_faults_for_one_customer_go_out_as_one_message(
    sqlite_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    clock: SteppingClock,
) -> None:
    add_customer(sqlite_store, phone=MARTA, channels=("sms",))
    devices = [("inv-101", "inverter"), ("bat-102", "battery"), ("inv-103", "inverter")]
    for n, device in enumerate(devices):
        add_ticket(sqlite_store, 1042 + n)
        fault_notice(sqlite_store, clock, 1042 + n, device=device)
        clock.advance(timedelta(seconds=20))
    send = sender(sqlite_store, provider_channels, clock)

    send.drain()
    assert fake_twilio.messages == []  # still inside the merge window
    clock.advance(timedelta(minutes=2))
    send.drain()

    [message] = fake_twilio.messages
    assert "3 issues" in message.body and "battery" in message.body
    first, *merged = rows(sqlite_store)
    assert (first.status, first.event) == ("sent", "issues_digest")
    assert [(m.status, m.merged_into) for m in merged] == [("merged", first.id)] * 2
    # each issue keeps its own evidence: "why did I get this?" stays answerable
    assert [i["ticket"]["id"] for i in first.context["issues"]] == [1042, 1043, 1044]
    assert all(i["alert"]["rule_version"] for i in first.context["issues"])


def test_a_critical_notice_is_neither_held_nor_merged(
    sqlite_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    clock: SteppingClock,
) -> None:
    add_customer(sqlite_store, phone=MARTA, channels=("sms",))
    fault_notice(sqlite_store, clock, 1, critical=True)
    fault_notice(sqlite_store, clock, 2, device=("bat-102", "battery"))

    sender(sqlite_store, provider_channels, clock).drain()

    [message] = fake_twilio.messages
    assert "inverter" in message.body and "battery" not in message.body


def test_the_contact_budget_holds_further_notices_until_the_next_day(
    sqlite_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    clock: SteppingClock,
) -> None:
    add_customer(sqlite_store, phone=MARTA, channels=("sms",))
    send = sender(sqlite_store, provider_channels, clock, budget=2, merge_window=timedelta(0))
    for n in range(3):
        fault_notice(sqlite_store, clock, n)
        send.drain()
        clock.advance(timedelta(hours=1))

    assert len(fake_twilio.messages) == 2
    held = rows(sqlite_store)[2]
    assert held.status == "queued"
    assert held.next_attempt_at == NOW + timedelta(days=1)
    assert "contact budget" in (held.last_error or "")

    clock.set(NOW + timedelta(days=1))
    send.drain()
    assert len(fake_twilio.messages) == 3


def test_the_budget_counts_a_rolling_day() -> None:
    sent = [NOW - timedelta(hours=23), NOW - timedelta(hours=2), NOW - timedelta(hours=30)]
    assert within_budget(sent, NOW, limit=3) == NOW
    assert within_budget(sent, NOW, limit=2) == NOW + timedelta(hours=1)


def test_a_customer_in_bangkok_gets_nothing_at_3_am_their_time(
    sqlite_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    clock: SteppingClock,
) -> None:
    clock.set(datetime(2026, 11, 24, 20, 0, tzinfo=UTC))  # 03:00 in Bangkok (UTC+7)
    add_customer(
        sqlite_store,
        phone=MARTA,
        timezone="Asia/Bangkok",
        quiet_hours="22:00-07:00",
        channels=("sms",),
        locale="th",
    )
    fault_notice(sqlite_store, clock, 1)
    send = sender(sqlite_store, provider_channels, clock)

    for _ in range(7):  # the night passes in half hours, until 06:30 local
        clock.advance(timedelta(minutes=30))
        send.drain()
    assert fake_twilio.messages == []

    clock.set(datetime(2026, 11, 25, 0, 0, tzinfo=UTC))  # 07:00 in Bangkok
    send.drain()
    [message] = fake_twilio.messages
    assert "อินเวอร์เตอร์" in message.body


def test_a_stop_received_after_a_message_was_claimed_still_stops_it(
    sqlite_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    clock: SteppingClock,
) -> None:
    add_customer(sqlite_store, phone=MARTA, channels=("sms",))
    fault_notice(sqlite_store, clock, 1)
    with sqlite_store.begin() as session:  # the STOP lands while the row is being sent
        marta = session.get(Customer, "cust-marta")
        assert marta is not None
        marta.opted_out = ["sms"]

    sender(sqlite_store, provider_channels, clock, merge_window=timedelta(0)).drain()

    assert fake_twilio.messages == []
    [row] = rows(sqlite_store)
    assert (row.status, row.last_error) == ("failed", "customer opted out of sms")


def test_twilio_21610_on_send_opts_the_customer_out(
    sqlite_store: sessionmaker[Session],
    provider_channels: dict[str, Channel],
    fake_twilio: FakeTwilio,
    clock: SteppingClock,
) -> None:
    add_customer(sqlite_store, phone=MARTA, channels=("sms", "email"))
    fake_twilio.reject_number(MARTA, code=21610)
    fault_notice(sqlite_store, clock, 1)

    sender(sqlite_store, provider_channels, clock, merge_window=timedelta(0)).drain()

    with sqlite_store() as session:
        marta = session.get(Customer, "cust-marta")
        assert marta is not None and marta.opted_out == ["sms"]
    assert [(r.channel, r.status) for r in rows(sqlite_store)] == [
        ("sms", "failed"),
        ("email", "sent"),
    ]


def test_a_notice_with_no_follow_up_becomes_a_task_for_ops(
    sqlite_store: sessionmaker[Session], clock: SteppingClock
) -> None:
    add_customer(sqlite_store, phone=MARTA, channels=("sms",))
    for ticket in (1, 2):
        add_ticket(sqlite_store, ticket)
        fault_notice(sqlite_store, clock, ticket)
    with sqlite_store.begin() as session:  # ticket 2 got its all-clear
        notify_customer_update(
            session, ticket_id=2, event="ticket_resolved", key="resolved:2", now=NOW
        )
    within = timedelta(hours=24)

    assert check_overdue(sqlite_store, NOW + timedelta(hours=23), within) == 0
    assert check_overdue(sqlite_store, NOW + timedelta(hours=25), within) == 1
    assert check_overdue(sqlite_store, NOW + timedelta(hours=26), within) == 0  # once

    with sqlite_store() as session:
        [task] = session.scalars(select(FollowUp)).all()
    assert (task.kind, task.ticket_id, task.status) == ("orphan_notice", 1, "open")


def test_a_follow_up_reuses_the_notice_context_and_skips_customers_never_told(
    sqlite_store: sessionmaker[Session], clock: SteppingClock
) -> None:
    add_customer(sqlite_store, phone=MARTA, channels=("sms",))
    add_ticket(sqlite_store, 1)
    add_ticket(sqlite_store, 2)
    fault_notice(sqlite_store, clock, 1)
    with sqlite_store.begin() as session:
        told = notify_customer_update(
            session,
            ticket_id=1,
            event="status_update",
            key="update:1",
            now=NOW,
            update={"eta": "2026-11-26T14:00:00+00:00"},
        )
        never_told = notify_customer_update(
            session, ticket_id=2, event="ticket_resolved", key="resolved:2", now=NOW
        )
        assert never_told == []
        assert told[0].context["update"]["eta"] == "2026-11-26T14:00:00+00:00"
        assert told[0].context["alert"]["rule_version"]
    body = Renderer().render("status_update", "sms", "en", told[0].context).body
    assert "New estimated time: Thu 26 Nov 14:00 (Europe/Lisbon time)" in body
