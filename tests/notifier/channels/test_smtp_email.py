from __future__ import annotations

import email
from collections.abc import Iterator
from email.message import Message

import pytest

from forewarn.notifier.channels import DeliveryError, Outbound
from forewarn.notifier.channels.smtp_email import SmtpEmail
from tests.fakes.providers import FakeSmtp
from tests.services import free_port

CUSTOMER = "marta.silva@example.com"


@pytest.fixture
def relay() -> Iterator[FakeSmtp]:
    with FakeSmtp() as fake:
        yield fake


def channel(port: int) -> SmtpEmail:
    return SmtpEmail("127.0.0.1", port, "alerts@forewarn.example.com", security="none", timeout=5)


def notice(to: str = CUSTOMER) -> Outbound:
    return Outbound(
        notification_id=7,
        to=to,
        body="Your inverter needs a visit.",
        subject="Inverter",
        html="<p>Your inverter needs a visit.</p>",
        to_name="Marta Silva",
    )


def parsed(relay: FakeSmtp) -> Message:
    [sent] = relay.messages
    return email.message_from_bytes(sent.data)


def test_it_sends_text_and_html_alternatives(relay: FakeSmtp) -> None:
    receipt = channel(relay.port).send(notice())

    mail = parsed(relay)
    assert relay.messages[0].rcpt_to == (CUSTOMER,)
    assert mail["Subject"] == "Inverter"
    assert mail["X-Forewarn-Notification"] == "7"
    assert mail["Message-ID"] == receipt.provider_message_id
    assert [part.get_content_type() for part in mail.walk()][1:] == ["text/plain", "text/html"]


def test_a_refused_recipient_is_permanent_and_masked(relay: FakeSmtp) -> None:
    relay.reject_address(CUSTOMER)
    with pytest.raises(DeliveryError) as failure:
        channel(relay.port).send(notice())
    assert failure.value.permanent is True
    assert failure.value.code == "550"
    assert CUSTOMER not in str(failure.value)


def test_a_busy_relay_is_transient(relay: FakeSmtp) -> None:
    relay.fail_next(code=421)
    with pytest.raises(DeliveryError) as failure:
        channel(relay.port).send(notice())
    assert failure.value.permanent is False


def test_an_unreachable_relay_is_transient() -> None:
    with pytest.raises(DeliveryError) as failure:
        channel(free_port()).send(notice())
    assert failure.value.permanent is False
