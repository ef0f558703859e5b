from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.providers import FakeSendGrid, FakeTwilio, UnresponsiveServer
from tests.services import free_port

TWILIO_SENDER = "+15005550006"


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
