from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest

from forewarn.notifier.channels import DeliveryError, Outbound
from forewarn.notifier.channels.webhook import SIGNATURE_HEADER, WebhookChannel
from tests.fakes.providers import FakeWebhookReceiver, UnresponsiveServer

SECRET = "s3cret-for-tests"


@pytest.fixture
def receiver() -> Iterator[FakeWebhookReceiver]:
    with FakeWebhookReceiver() as fake:
        yield fake


def channel(url: str, timeout: float = 5.0) -> WebhookChannel:
    return WebhookChannel(url, SECRET, timeout=timeout, clock=lambda: 1_800_000_000.0)


def notice() -> Outbound:
    return Outbound(notification_id=9, to="+351912000101", body="สวัสดี, inverter check")


def test_it_posts_signed_json_with_an_idempotency_key(receiver: FakeWebhookReceiver) -> None:
    receipt = channel(receiver.base_url + "/hook").send(notice())

    [(headers, body)] = receiver.received
    assert json.loads(body)["body"] == "สวัสดี, inverter check"
    assert headers["idempotency-key"] == "9"
    expected = hmac.new(SECRET.encode(), b"1800000000." + body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER.lower()] == f"t=1800000000,v1={expected}"
    assert receipt.provider_message_id == "wh-1"


@pytest.mark.parametrize(("status", "permanent"), [(503, False), (429, False), (400, True)])
def test_it_classifies_refusals(
    receiver: FakeWebhookReceiver, status: int, permanent: bool
) -> None:
    receiver.fail_next(status=status, retry_after="7")
    with pytest.raises(DeliveryError) as failure:
        channel(receiver.base_url).send(notice())
    assert failure.value.permanent is permanent
    assert failure.value.retry_after == (None if permanent else 7.0)
    assert "+351912000101" not in str(failure.value)


def test_a_receiver_that_never_answers_is_transient(
    unresponsive_server: UnresponsiveServer,
) -> None:
    with pytest.raises(DeliveryError) as failure:
        channel(unresponsive_server.base_url, timeout=0.3).send(notice())
    assert failure.value.permanent is False
