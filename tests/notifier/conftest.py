from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from forewarn.notifier.channels import Channel
from forewarn.notifier.channels.sendgrid_email import SendGridEmail
from forewarn.notifier.channels.twilio_sms import TwilioSms
from forewarn.store.engine import make_engine, make_sessionmaker
from forewarn.store.models import Customer, Technician
from forewarn.store.schema import upgrade
from tests.fakes.providers import FakeSendGrid, FakeTwilio, UnresponsiveServer
from tests.services import free_port

TWILIO_SENDER = "+15005550006"
SENDGRID_SENDER = "alerts@forewarn.example.com"


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    """A local Twilio whose only SMS-capable number is ``TWILIO_SENDER``."""
    with FakeTwilio(senders={TWILIO_SENDER}) as fake:
        yield fake


@pytest.fixture
def fake_sendgrid() -> Iterator[FakeSendGrid]:
    with FakeSendGrid() as fake:
        yield fake


@pytest.fixture
def unresponsive_server() -> Iterator[UnresponsiveServer]:
    """Accepts connections and never answers."""
    with UnresponsiveServer() as server:
        yield server


@pytest.fixture
def refused_url() -> str:
    """A local URL nothing listens on: connecting is refused at once."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass
class SteppingClock:
    """A clock that stands still until the test moves it."""

    moment: datetime

    def now(self) -> datetime:
        return self.moment

    def advance(self, delta: timedelta) -> None:
        self.moment += delta

    def set(self, moment: datetime) -> None:
        self.moment = moment


@contextmanager
def migrated_store(url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a freshly migrated database at ``url``; the engine is disposed after."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


@pytest.fixture
def store(database_url: str) -> Iterator[sessionmaker[Session]]:
    """An empty, migrated store, on SQLite and on PostgreSQL."""
    with migrated_store(database_url) as sessions:
        yield sessions


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """An empty, migrated SQLite store, for tests whose subject is not the database."""
    with migrated_store(f"sqlite:///{tmp_path / 'forewarn.db'}") as sessions:
        yield sessions


@pytest.fixture
def postgres_store(postgres_url: str) -> Iterator[sessionmaker[Session]]:
    """An empty, migrated PostgreSQL store."""
    with migrated_store(postgres_url) as sessions:
        yield sessions


@pytest.fixture
def provider_channels(
    fake_twilio: FakeTwilio, fake_sendgrid: FakeSendGrid
) -> Iterator[dict[str, Channel]]:
    """The real Twilio and SendGrid channels, their SDKs pointed at the local fakes."""
    http = fake_twilio.http_client(timeout=5.0)
    channels: dict[str, Channel] = {
        "sms": TwilioSms(
            fake_twilio.account_sid, fake_twilio.auth_token, TWILIO_SENDER, http_client=http
        ),
        "email": SendGridEmail(
            fake_sendgrid.api_key, SENDGRID_SENDER, timeout=5.0, host=fake_sendgrid.base_url
        ),
    }
    yield channels
    http.close()


def add_customer(
    sessions: sessionmaker[Session],
    id: str = "cust-marta",
    *,
    name: str = "Marta Silva",
    phone: str | None = "+351912000101",
    email: str | None = "marta@example.com",
    locale: str = "en",
    timezone: str = "Europe/Lisbon",
    channels: tuple[str, ...] = ("sms", "email"),
    quiet_hours: str | None = None,
    opted_out: tuple[str, ...] = (),
) -> None:
    with sessions.begin() as session:
        session.add(
            Customer(
                id=id,
                name=name,
                phone=phone,
                email=email,
                locale=locale,
                timezone=timezone,
                channels=list(channels),
                quiet_hours=quiet_hours,
                opted_out=list(opted_out),
            )
        )


def add_technician(
    sessions: sessionmaker[Session],
    id: str = "tech-ana",
    *,
    name: str = "Ana Costa",
    phone: str | None = "+351913000202",
    email: str | None = "ana@example.com",
    locale: str = "en",
    timezone: str = "Europe/Lisbon",
) -> None:
    with sessions.begin() as session:
        session.add(
            Technician(
                id=id,
                name=name,
                phone=phone,
                email=email,
                locale=locale,
                timezone=timezone,
                skills=["inverter"],
                regions=["lisbon-west"],
                channels=["sms", "email"],
            )
        )
