"""Messages POSTed as signed JSON to a URL of yours (your own SMS gateway, a chat bridge)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from forewarn.notifier.channels import (
    DeliveryError,
    Medium,
    Outbound,
    Receipt,
    retry_after_seconds,
)
from forewarn.notifier.privacy import mask_address

SIGNATURE_HEADER = "X-Forewarn-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>``, as receivers verify it.

    The timestamp is inside the MAC, so a receiver that refuses old timestamps cannot be
    fed a captured request again.
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class WebhookChannel:
    """POSTs ``{"notification_id", "medium", "to", "subject", "body", "html"}``.

    ``Idempotency-Key`` carries the notification id: forewarn delivers at least once, and
    a receiver that keeps the keys it saw can make it exactly once. 2xx is accepted (an
    ``id`` in a JSON answer becomes the provider message id); 408, 425, 429 and 5xx are
    retried, honouring ``Retry-After``; any other answer is permanent.
    """

    provider = "webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        medium: Medium = "sms",
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.medium: Medium = medium
        self._url = url
        self._secret = secret
        self._timeout = timeout
        self._clock = clock

    def send(self, message: Outbound) -> Receipt:
        body = json.dumps(
            {
                "notification_id": message.notification_id,
                "medium": self.medium,
                "to": message.to,
                "to_name": message.to_name,
                "subject": message.subject,
                "body": message.body,
                "html": message.html,
            },
            ensure_ascii=False,
        ).encode()
        # The settings schema admits only http(s) URLs, so urllib's file: handler is unreachable.
        request = urllib.request.Request(  # noqa: S310
            self._url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": str(message.notification_id),
                SIGNATURE_HEADER: sign(self._secret, int(self._clock()), body),
                "User-Agent": "forewarn-webhook/1",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310 - the URL is the operator's, http(s) only by schema
                answer = response.read(64 * 1024)
        except urllib.error.HTTPError as exc:
            with exc:
                raise self._rejected(exc.code, exc.headers.get("Retry-After"), message.to) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise DeliveryError(
                f"webhook unreachable ({type(exc).__name__}) sending to {mask_address(message.to)}",
                permanent=False,
            ) from exc
        return Receipt(provider=self.provider, provider_message_id=_answer_id(answer))

    def _rejected(self, status: int, retry_after: str | None, to: str) -> DeliveryError:
        transient = status in (408, 425, 429) or status >= 500
        return DeliveryError(
            f"webhook refused the message to {mask_address(to)}: HTTP {status}",
            permanent=not transient,
            retry_after=(
                retry_after_seconds(retry_after, self._clock())
                if transient and retry_after
                else None
            ),
            code=str(status),
        )


def _answer_id(answer: bytes) -> str | None:
    try:
        value = json.loads(answer).get("id")
    except (ValueError, AttributeError):
        return None
    return str(value) if value is not None else None
