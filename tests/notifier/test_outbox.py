from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from forewarn.notifier.examples import example_context
from forewarn.notifier.outbox import customer_recipient, notify, technician_recipient
from forewarn.store.models import Customer, Notification, Technician
from tests.notifier.conftest import add_customer, add_technician

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


class EventFailed(Exception):
    """The ticket event that caused the notification did not commit."""


def notify_customer(
    sessions: sessionmaker[Session],
    *,
    key: str = "ticket-event:1",
    customer_id: str = "cust-marta",
    now: datetime = NOW,
    critical: bool = False,
    context: dict[str, Any] | None = None,
) -> list[int]:
    with sessions.begin() as session:
        customer = session.get(Customer, customer_id)
        assert customer is not None
        rows = notify(
            session,
            key=key,
            event="fault_notice",
            recipient=customer_recipient(customer),
            context=context if context is not None else example_context(),
            now=now,
            critical=critical,
        )
        return [row.id for row in rows]


def outbox(sessions: sessionmaker[Session]) -> list[Notification]:
    with sessions() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def test_it_queues_a_message_on_the_customers_first_choice_of_channel(
    store: sessionmaker[Session],
) -> None:
    add_customer(store, channels=("email", "sms"), locale="pt-BR")

    notify_customer(store)

    [row] = outbox(store)
    assert row.channel == "email"
    assert row.address == "marta@example.com"
    assert row.event == "fault_notice"
    assert row.locale == "pt-BR"
    assert row.status == "queued"
    assert row.attempts == 0
    assert row.next_attempt_at == NOW
    assert row.created_at == NOW
    assert row.dedupe_key == "ticket-event:1:customer:cust-marta:email"


def test_it_queues_nothing_the_second_time_the_same_cause_notifies(
    store: sessionmaker[Session],
) -> None:
    add_customer(store)

    first = notify_customer(store, key="ticket-event:7")
    again = notify_customer(store, key="ticket-event:7")

    assert len(first) == 1
    assert again == []
    assert [row.id for row in outbox(store)] == first


def test_it_queues_again_for_a_different_cause(store: sessionmaker[Session]) -> None:
    add_customer(store)

    notify_customer(store, key="ticket-event:7")
    notify_customer(store, key="ticket-event:8")

    assert len(outbox(store)) == 2


def test_it_queues_every_channel_for_a_technician(store: sessionmaker[Session]) -> None:
    add_technician(store)

    with store.begin() as session:
        technician = session.get(Technician, "tech-ana")
        assert technician is not None
        notify(
            session,
            key="ticket-event:3",
            event="work_order",
            recipient=technician_recipient(technician),
            context=example_context(),
            now=NOW,
        )

    assert [(row.channel, row.address) for row in outbox(store)] == [
        ("sms", "+351913000202"),
        ("email", "ana@example.com"),
    ]


def test_it_skips_a_channel_the_customer_said_stop_to(store: sessionmaker[Session]) -> None:
    add_customer(store, channels=("sms", "email"), opted_out=("sms",))

    notify_customer(store)

    assert [row.channel for row in outbox(store)] == ["email"]


def test_it_skips_a_channel_the_customer_has_no_address_for(
    store: sessionmaker[Session],
) -> None:
    add_customer(store, channels=("sms", "email"), phone=None)

    notify_customer(store)

    assert [row.channel for row in outbox(store)] == ["email"]


def test_it_queues_nothing_for_a_customer_who_cannot_be_reached(
    store: sessionmaker[Session],
) -> None:
    add_customer(store, opted_out=("sms",), email=None)

    assert notify_customer(store) == []
    assert outbox(store) == []


def test_it_freezes_the_recipients_name_and_time_zone_into_the_context(
    store: sessionmaker[Session],
) -> None:
    add_customer(store, name="Marta Silva", timezone="Asia/Bangkok")
    context = example_context()

    notify_customer(store, context=context)

    [row] = outbox(store)
    assert row.context["recipient"] == {
        "name": "Marta Silva",
        "timezone": "Asia/Bangkok",
        "by_sms": True,
    }
    assert row.context["ticket"] == context["ticket"]
    assert row.context["site"] == context["site"]


def test_it_queues_nothing_when_the_callers_transaction_rolls_back(
    store: sessionmaker[Session],
) -> None:
    add_customer(store)

    with pytest.raises(EventFailed), store.begin() as session:
        customer = session.get(Customer, "cust-marta")
        assert customer is not None
        queued = notify(
            session,
            key="ticket-event:1",
            event="fault_notice",
            recipient=customer_recipient(customer),
            context=example_context(),
            now=NOW,
        )
        assert len(queued) == 1
        raise EventFailed

    with store() as session:
        assert session.scalar(select(func.count()).select_from(Notification)) == 0


# Bangkok is UTC+7 all year: 03:00 there is 20:00 UTC the day before.
BANGKOK_3AM = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
BANGKOK_7AM = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)


def test_it_holds_a_message_until_the_customers_quiet_hours_end(
    store: sessionmaker[Session],
) -> None:
    add_customer(store, timezone="Asia/Bangkok", quiet_hours="22:00-07:00")

    notify_customer(store, now=BANGKOK_3AM)

    [row] = outbox(store)
    assert row.next_attempt_at == BANGKOK_7AM
    assert row.created_at == BANGKOK_3AM


def test_it_lets_a_critical_message_through_quiet_hours(store: sessionmaker[Session]) -> None:
    add_customer(store, timezone="Asia/Bangkok", quiet_hours="22:00-07:00")

    notify_customer(store, now=BANGKOK_3AM, critical=True)

    [row] = outbox(store)
    assert row.next_attempt_at == BANGKOK_3AM
    assert row.critical is True


def test_it_queues_for_now_outside_quiet_hours(store: sessionmaker[Session]) -> None:
    add_customer(store, timezone="Asia/Bangkok", quiet_hours="22:00-07:00")
    bangkok_noon = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)

    notify_customer(store, now=bangkok_noon)

    [row] = outbox(store)
    assert row.next_attempt_at == bangkok_noon
