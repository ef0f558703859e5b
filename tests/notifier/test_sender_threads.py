"""The sender role's thread pool, built the way ``forewarn run`` builds it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.loading import parse_config
from forewarn.notifier.channels import Channel
from forewarn.service import Forewarn, build
from forewarn.store.models import DeliveryAttempt, Notification
from tests.fakes.providers import FakeSendGrid, FakeTwilio
from tests.notifier.conftest import SteppingClock, add_technician
from tests.notifier.test_sender import NOW, notify_technician


@pytest.fixture
def app(
    store: sessionmaker[Session], database_url: str, provider_channels: dict[str, Channel]
) -> Iterator[Forewarn]:
    config = parse_config(
        "notifications:\n  sender_threads: 4\n", {"FOREWARN_DATABASE_URL": database_url}
    )
    built = build(config, clock=SteppingClock(NOW), channels=provider_channels, worker_id="w")
    yield built
    built.sender.close()
    built.engine.dispose()


@pytest.mark.timeout(90)
def test_it_sends_200_rows_exactly_once_on_four_threads(
    app: Forewarn,
    store: sessionmaker[Session],
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    add_technician(store)
    notify_technician(store, SteppingClock(NOW), jobs=range(1, 101))  # SMS + email each

    tried = app.sender.drain(limit=5)

    assert tried == 200
    with store() as session:
        rows = list(session.scalars(select(Notification)))
        sent = Counter(
            session.scalars(
                select(DeliveryAttempt.notification_id).where(DeliveryAttempt.outcome == "sent")
            )
        )
    assert len(rows) == 200
    assert {row.status for row in rows} == {"sent"}
    assert sent == Counter(row.id for row in rows)
    texts = Counter(message.body for message in fake_twilio.messages)
    assert len(texts) == 100
    assert set(texts.values()) == {1}
    emailed = Counter(message.custom_args["notification_id"] for message in fake_sendgrid.messages)
    assert emailed == Counter(str(row.id) for row in rows if row.channel == "email")
    assert {row.claimed_by for row in rows} <= {f"w/{n}" for n in range(4)}
    assert len({row.claimed_by for row in rows}) > 1


def test_one_thread_keeps_the_process_worker_id(
    store: sessionmaker[Session], database_url: str, provider_channels: dict[str, Channel]
) -> None:
    config = parse_config(
        "notifications:\n  sender_threads: 1\n", {"FOREWARN_DATABASE_URL": database_url}
    )
    app = build(config, clock=SteppingClock(NOW), channels=provider_channels, worker_id="w")
    try:
        add_technician(store)
        notify_technician(store, SteppingClock(NOW))
        assert app.sender.drain() == 2
        with store() as session:
            assert set(session.scalars(select(Notification.claimed_by))) == {"w"}
    finally:
        app.sender.close()
        app.engine.dispose()
