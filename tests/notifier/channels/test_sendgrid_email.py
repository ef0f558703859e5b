from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from python_http_client.exceptions import HTTPError
from sendgrid.helpers.eventwebhook import EventWebhook

from forewarn.notifier.channels import DeliveryError, Outbound
from forewarn.notifier.channels.sendgrid_email import SendGridEmail
from tests.fakes.providers import FakeSendGrid, UnresponsiveServer

SENDER = "alerts@forewarn.example"
CUSTOMER = "joana.silva@example.com"
MASKED_CUSTOMER = "j***@example.com"

ChannelFactory = Callable[..., SendGridEmail]


def notice(
    to: str = CUSTOMER, *, html: str | None = "<p>A technician is <b>coming</b>.</p>"
) -> Outbound:
    return Outbound(
        notification_id=77,
        to=to,
        to_name="Joana Silva",
        subject="We found a fault on your inverter",
        body="A technician is coming.",
        html=html,
    )


@pytest.fixture
def sendgrid_email(fake_sendgrid: FakeSendGrid) -> ChannelFactory:
    """Builds a SendGridEmail talking to the fake (or to ``host``) through the real SDK."""

    def build(
        *,
        host: str | None = None,
        api_key: str | None = None,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> SendGridEmail:
        return SendGridEmail(
            api_key or fake_sendgrid.api_key,
            SENDER,
            from_name="Forewarn Solar",
            timeout=timeout,
            host=host or fake_sendgrid.base_url,
            clock=clock,
        )

    return build


def send_failing(channel: SendGridEmail, message: Outbound | None = None) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        channel.send(message or notice())
    return caught.value


def test_it_returns_the_x_message_id_as_the_receipt(
    sendgrid_email: ChannelFactory, fake_sendgrid: FakeSendGrid
) -> None:
    receipt = sendgrid_email().send(notice())

    [sent] = fake_sendgrid.messages
    assert receipt.provider == "sendgrid"
    assert receipt.provider_message_id == sent.message_id
    assert len(sent.message_id) == 22


def test_it_carries_the_notification_id_in_custom_args(
    sendgrid_email: ChannelFactory, fake_sendgrid: FakeSendGrid
) -> None:
    sendgrid_email().send(notice())

    [sent] = fake_sendgrid.messages
    assert sent.custom_args == {"notification_id": "77"}


def test_it_sends_the_text_and_html_parts_with_subject_sender_and_recipient(
    sendgrid_email: ChannelFactory, fake_sendgrid: FakeSendGrid
) -> None:
    sendgrid_email().send(notice())

    [sent] = fake_sendgrid.messages
    assert sent.to == (CUSTOMER,)
    assert (sent.from_email, sent.from_name) == (SENDER, "Forewarn Solar")
    assert sent.subject == "We found a fault on your inverter"
    assert sent.text == "A technician is coming."
    assert sent.html == "<p>A technician is <b>coming</b>.</p>"
    assert [block["type"] for block in sent.payload["content"]] == ["text/plain", "text/html"]


def test_it_sends_only_a_text_part_when_there_is_no_html(
    sendgrid_email: ChannelFactory, fake_sendgrid: FakeSendGrid
) -> None:
    sendgrid_email().send(notice(html=None))

    [sent] = fake_sendgrid.messages
    assert [block["type"] for block in sent.payload["content"]] == ["text/plain"]


def test_it_reports_an_invalid_address_as_permanent_without_the_address_in_clear(
    sendgrid_email: ChannelFactory, fake_sendgrid: FakeSendGrid
) -> None:
    fake_sendgrid.reject_address(CUSTOMER)

    error = send_failing(sendgrid_email())

    assert (error.permanent, error.code) == (True, "400")
    assert "Does not contain a valid address" in str(error)
    assert CUSTOMER not in str(error)
    assert MASKED_CUSTOMER in str(error)
    assert isinstance(error.__cause__, HTTPError)
    assert fake_sendgrid.messages == []


def test_it_reports_a_wrong_api_key_as_permanent(sendgrid_email: ChannelFactory) -> None:
    error = send_failing(sendgrid_email(api_key="SG.wrong.key"))

    assert (error.permanent, error.code) == (True, "401")


def test_it_reports_an_unverified_sender_as_permanent(
    sendgrid_email: ChannelFactory, fake_sendgrid: FakeSendGrid
) -> None:
    fake_sendgrid.fail_next(status=403)

    error = send_failing(sendgrid_email())

    assert (error.permanent, error.code) == (True, "403")


def test_it_reports_an_oversized_payload_as_permanent(
    sendgrid_email: ChannelFactory, fake_sendgrid: FakeSendGrid
) -> None:
    fake_sendgrid.max_body_bytes = 200

    error = send_failing(sendgrid_email(), notice(html="<p>" + "x" * 500 + "</p>"))

    assert (error.permanent, error.code) == (True, "413")


def test_it_reports_rate_limiting_as_transient_until_the_reset_time(
    sendgrid_email: ChannelFactory, fake_sendgrid: FakeSendGrid
) -> None:
    now = 1_800_000_000.0
    fake_sendgrid.fail_next(status=429, rate_limit_reset=1_800_000_042)

    error = send_failing(sendgrid_email(clock=lambda: now))

    assert (error.permanent, error.code) == (False, "429")
    assert error.retry_after == 42.0


def test_it_never_asks_to_wait_a_negative_time_for_a_reset_already_past(
    sendgrid_email: ChannelFactory, fake_sendgrid: FakeSendGrid
) -> None:
    fake_sendgrid.fail_next(status=429, rate_limit_reset=1_799_999_990)

    error = send_failing(sendgrid_email(clock=lambda: 1_800_000_000.0))

    assert error.retry_after == 0.0


def test_it_falls_back_to_retry_after_when_there_is_no_reset_header(
    sendgrid_email: ChannelFactory, fake_sendgrid: FakeSendGrid
) -> None:
    fake_sendgrid.fail_next(status=429, retry_after=7)

    error = send_failing(sendgrid_email())

    assert (error.permanent, error.retry_after) == (False, 7.0)


def test_it_reports_a_service_outage_as_transient(
    sendgrid_email: ChannelFactory, fake_sendgrid: FakeSendGrid
) -> None:
    fake_sendgrid.fail_next(status=503)

    error = send_failing(sendgrid_email())

    assert (error.permanent, error.code, error.retry_after) == (False, "503", None)


def test_it_goes_through_once_the_outage_is_over(
    sendgrid_email: ChannelFactory, fake_sendgrid: FakeSendGrid
) -> None:
    channel = sendgrid_email()
    fake_sendgrid.fail_next(1, status=500)

    first = send_failing(channel)
    receipt = channel.send(notice())

    assert not first.permanent
    assert receipt.provider_message_id == fake_sendgrid.messages[0].message_id


def test_it_gives_up_on_a_silent_server_within_the_timeout_as_transient(
    sendgrid_email: ChannelFactory, unresponsive_server: UnresponsiveServer
) -> None:
    channel = sendgrid_email(host=unresponsive_server.base_url, timeout=0.5)

    started = time.monotonic()
    error = send_failing(channel)
    elapsed = time.monotonic() - started

    assert not error.permanent
    assert CUSTOMER not in str(error)
    assert 0.4 <= elapsed < 2.0
    assert unresponsive_server.connections == 1


def test_it_reports_a_refused_connection_as_transient(
    sendgrid_email: ChannelFactory, refused_url: str
) -> None:
    error = send_failing(sendgrid_email(host=refused_url, timeout=0.5))

    assert not error.permanent
    assert "URLError" in str(error)


def test_it_refuses_content_that_starts_like_an_api_key_as_permanent(
    sendgrid_email: ChannelFactory, fake_sendgrid: FakeSendGrid
) -> None:
    leaked = Outbound(notification_id=1, to=CUSTOMER, subject="s", body="SG.abc123.def456")

    error = send_failing(sendgrid_email(), leaked)

    assert error.permanent
    assert fake_sendgrid.requests == 0


def test_the_fakes_signed_events_verify_with_the_sdk(
    sendgrid_email: ChannelFactory, fake_sendgrid: FakeSendGrid
) -> None:
    sendgrid_email().send(notice())
    [sent] = fake_sendgrid.messages
    events = [fake_sendgrid.event(sent, "delivered", timestamp=1_800_000_000)]

    body, signature, timestamp = fake_sendgrid.signed_events(events, "1800000005")

    verifier = EventWebhook(fake_sendgrid.public_key)
    assert verifier.verify_signature(body.decode(), signature, timestamp)
    [event] = json.loads(body)
    assert event["notification_id"] == "77"
    assert event["sg_message_id"].startswith(sent.message_id + ".")
    assert event["email"] == CUSTOMER


def test_a_tampered_event_body_or_timestamp_does_not_verify(
    fake_sendgrid: FakeSendGrid,
) -> None:
    events: list[dict[str, object]] = [{"event": "bounce", "notification_id": "77"}]
    body, signature, timestamp = fake_sendgrid.signed_events(events, "1800000005")
    verifier = EventWebhook(fake_sendgrid.public_key)

    tampered = body.decode().replace("bounce", "delivered")

    assert verifier.verify_signature(body.decode(), signature, timestamp)
    assert not verifier.verify_signature(tampered, signature, timestamp)
    assert not verifier.verify_signature(body.decode(), signature, "1800000006")
