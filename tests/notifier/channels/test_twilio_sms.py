from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from twilio.base.exceptions import TwilioRestException

from forewarn.notifier.channels import DeliveryError, Outbound
from forewarn.notifier.channels.twilio_sms import TwilioSms
from tests.fakes.providers import FakeTwilio, LocalTwilioHttpClient, UnresponsiveServer
from tests.notifier.conftest import TWILIO_SENDER

CUSTOMER = "+351912345678"
MASKED_CUSTOMER = "+35191****678"
CALLBACK = "https://forewarn.example.com/webhooks/twilio/status"

ChannelFactory = Callable[..., TwilioSms]


def notice(
    to: str = CUSTOMER, body: str = "Inverter fault found; a technician is coming."
) -> Outbound:
    return Outbound(notification_id=41, to=to, body=body)


@pytest.fixture
def clients() -> Iterator[list[LocalTwilioHttpClient]]:
    """HTTP clients handed to channels, closed after the test."""
    made: list[LocalTwilioHttpClient] = []
    yield made
    for client in made:
        client.close()


@pytest.fixture
def twilio_sms(fake_twilio: FakeTwilio, clients: list[LocalTwilioHttpClient]) -> ChannelFactory:
    """Builds a TwilioSms talking to the fake (or to ``base_url``) through the real SDK."""

    def build(
        *,
        base_url: str | None = None,
        auth_token: str | None = None,
        timeout: float = 5.0,
        status_callback: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> TwilioSms:
        client = LocalTwilioHttpClient(base_url or fake_twilio.base_url, timeout=timeout)
        clients.append(client)
        return TwilioSms(
            fake_twilio.account_sid,
            auth_token or fake_twilio.auth_token,
            TWILIO_SENDER,
            status_callback=status_callback,
            http_client=client,
            clock=clock,
        )

    return build


def send_failing(channel: TwilioSms, message: Outbound | None = None) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        channel.send(message or notice())
    return caught.value


def test_it_sends_the_sms_and_returns_twilios_sid(
    twilio_sms: ChannelFactory, fake_twilio: FakeTwilio
) -> None:
    receipt = twilio_sms().send(notice())

    [sent] = fake_twilio.messages
    assert receipt.provider == "twilio"
    assert receipt.provider_message_id == sent.sid
    assert sent.sid.startswith("SM")
    assert len(sent.sid) == 34


def test_it_posts_exactly_the_recipient_sender_and_body(
    twilio_sms: ChannelFactory, fake_twilio: FakeTwilio
) -> None:
    body = "Olá! Detetámos uma falha no inversor; o técnico chega entre as 9h e as 11h."

    twilio_sms().send(notice(body=body))

    [sent] = fake_twilio.messages
    assert (sent.to, sent.from_, sent.body) == (CUSTOMER, TWILIO_SENDER, body)
    assert sent.status_callback is None
    assert "StatusCallback" not in sent.params


def test_it_asks_for_status_callbacks_naming_the_notification(
    twilio_sms: ChannelFactory, fake_twilio: FakeTwilio
) -> None:
    twilio_sms(status_callback=CALLBACK).send(notice())

    [sent] = fake_twilio.messages
    assert sent.status_callback == f"{CALLBACK}?notification=41"


def test_it_reports_an_invalid_number_as_permanent_without_the_number_in_clear(
    twilio_sms: ChannelFactory, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.reject_number(CUSTOMER, code=21211)

    error = send_failing(twilio_sms())

    assert error.permanent
    assert error.code == "21211"
    assert error.retry_after is None
    assert CUSTOMER not in str(error)
    assert MASKED_CUSTOMER in str(error)
    assert isinstance(error.__cause__, TwilioRestException)
    assert fake_twilio.messages == []


def test_it_reports_a_malformed_number_as_permanent(twilio_sms: ChannelFactory) -> None:
    error = send_failing(twilio_sms(), notice(to="+3519123456789012345"))

    assert (error.permanent, error.code) == (True, "21211")
    assert "3519123456789012345" not in str(error)


def test_it_reports_an_unsubscribed_recipient_as_permanent(
    twilio_sms: ChannelFactory, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.reject_number(CUSTOMER, code=21610)

    error = send_failing(twilio_sms())

    assert (error.permanent, error.code) == (True, "21610")
    assert "STOP" in str(error)


@pytest.mark.parametrize("code", [21614, 21408, 21612])
def test_it_reports_a_recipient_twilio_cannot_reach_as_permanent(
    twilio_sms: ChannelFactory, fake_twilio: FakeTwilio, code: int
) -> None:
    fake_twilio.reject_number(CUSTOMER, code=code)

    error = send_failing(twilio_sms())

    assert (error.permanent, error.code) == (True, str(code))
    assert CUSTOMER not in str(error)


def test_it_reports_a_body_over_1600_characters_as_permanent(twilio_sms: ChannelFactory) -> None:
    error = send_failing(twilio_sms(), notice(body="x" * 1601))

    assert (error.permanent, error.code) == (True, "21617")


def test_it_judges_an_unknown_client_error_permanent_and_scrubs_twilios_message(
    twilio_sms: ChannelFactory, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.reject_number(CUSTOMER, code=21999, status=400)

    error = send_failing(twilio_sms())

    assert (error.permanent, error.code) == (True, "21999")
    assert "was refused" in str(error)
    assert CUSTOMER not in str(error)


def test_it_reports_a_service_outage_as_transient(
    twilio_sms: ChannelFactory, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.fail_next(status=503)

    error = send_failing(twilio_sms())

    assert not error.permanent
    assert error.code == "20503"
    assert error.retry_after is None


def test_it_goes_through_once_the_outage_is_over(
    twilio_sms: ChannelFactory, fake_twilio: FakeTwilio
) -> None:
    channel = twilio_sms()
    fake_twilio.fail_next(1, status=500)

    first = send_failing(channel)
    receipt = channel.send(notice())

    assert not first.permanent
    assert receipt.provider_message_id == fake_twilio.messages[0].sid


def test_it_reports_rate_limiting_as_transient_and_honours_retry_after(
    twilio_sms: ChannelFactory, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.fail_next(status=429, retry_after=30)

    error = send_failing(twilio_sms())

    assert not error.permanent
    assert error.code == "20429"
    assert error.retry_after == 30.0


def test_it_reads_a_retry_after_given_as_an_http_date(
    twilio_sms: ChannelFactory, fake_twilio: FakeTwilio
) -> None:
    now = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    fake_twilio.fail_next(status=503, retry_after="Fri, 15 Jan 2027 08:01:30 GMT")

    error = send_failing(twilio_sms(clock=lambda: now))

    assert not error.permanent
    assert error.retry_after == 90.0


def test_it_reports_a_wrong_auth_token_as_permanent(twilio_sms: ChannelFactory) -> None:
    error = send_failing(twilio_sms(auth_token="not-the-token"))

    assert (error.permanent, error.code) == (True, "20003")


def test_it_gives_up_on_a_silent_server_within_the_timeout_as_transient(
    twilio_sms: ChannelFactory, unresponsive_server: UnresponsiveServer
) -> None:
    channel = twilio_sms(base_url=unresponsive_server.base_url, timeout=0.5)

    started = time.monotonic()
    error = send_failing(channel)
    elapsed = time.monotonic() - started

    assert not error.permanent
    assert "Timeout" in str(error)
    assert CUSTOMER not in str(error)
    assert 0.4 <= elapsed < 2.0
    assert unresponsive_server.connections == 1


def test_it_reports_a_refused_connection_as_transient(
    twilio_sms: ChannelFactory, refused_url: str
) -> None:
    error = send_failing(twilio_sms(base_url=refused_url, timeout=0.5))

    assert not error.permanent
    assert "ConnectionError" in str(error)
