"""Email through SendGrid's v3 Mail Send API, with the official SDK."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import From, Mail, SendGridException, To

from forewarn.notifier.channels import (
    DeliveryError,
    Medium,
    Outbound,
    Receipt,
    retry_after_seconds,
)
from forewarn.notifier.privacy import mask_email, scrub

# Statuses after which the very same request fails again: a malformed or oversized
# payload (400, 413, 415), a revoked or under-privileged API key (401), a sender
# identity that is not verified (403), a wrong host or path (404, 405).
_PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 405, 413, 415})


class SendGridEmail:
    """Sends email with ``SendGridAPIClient``; one ``/v3/mail/send`` request per message.

    Each message carries ``custom_args.notification_id``; SendGrid copies custom args
    into every event of its event webhook, which is how receipts find their row.
    SendGrid has no idempotency key either: a timeout after acceptance means a retry
    can deliver twice. ``host`` points the SDK elsewhere (the tests' local fake, the EU
    region ``https://api.eu.sendgrid.com``); ``clock`` turns ``X-RateLimit-Reset`` into
    seconds from now.
    """

    provider = "sendgrid"
    medium: Medium = "email"

    def __init__(
        self,
        api_key: str,
        from_email: str,
        *,
        from_name: str = "forewarn",
        timeout: float = 10.0,
        host: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = (
            SendGridAPIClient(api_key) if host is None else SendGridAPIClient(api_key, host=host)
        )
        # python_http_client.Client.timeout is handed to urllib's opener.open() on every
        # request (sub-clients built per call copy it); left at None it waits forever.
        self._client.client.timeout = timeout
        self._from = From(from_email, from_name)
        self._clock = clock

    def send(self, message: Outbound) -> Receipt:
        try:
            mail = Mail(
                from_email=self._from,
                to_emails=To(message.to, message.to_name),
                subject=message.subject,
                plain_text_content=message.body,
                html_content=message.html,
            )
        except SendGridException as exc:
            # The helper refuses content that starts like an API key ("SG.xxx.yyy"), so
            # a leaked secret never leaves; the same content is refused every time.
            raise DeliveryError(
                f"sendgrid helper refused the content for {mask_email(message.to)}",
                permanent=True,
            ) from exc
        mail.custom_arg = {"notification_id": str(message.notification_id)}
        try:
            response = self._client.send(mail)
        except HTTPError as exc:
            raise self._rejected(exc, message.to) from exc
        # urllib raises URLError (an OSError) when it cannot connect, TimeoutError or
        # another OSError when the socket fails later, and http.client errors such as
        # IncompleteRead (not OSErrors) when the answer is cut short.
        except (OSError, http.client.HTTPException) as exc:
            raise DeliveryError(
                f"sendgrid unreachable ({type(exc).__name__}) sending to {mask_email(message.to)}",
                permanent=False,
            ) from exc
        message_id = response.headers.get("X-Message-Id") if response.headers else None
        return Receipt(provider=self.provider, provider_message_id=message_id)

    def _rejected(self, exc: HTTPError, to: str) -> DeliveryError:
        status = int(exc.status_code)
        permanent = status in _PERMANENT_STATUSES or (
            400 <= status < 500 and status not in (408, 409, 425, 429)
        )
        retry_after = None if permanent else self._retry_after(exc.headers)
        return DeliveryError(
            f"sendgrid refused the email to {mask_email(to)}: HTTP {status}"
            f"{_first_error(exc.body)}",
            permanent=permanent,
            retry_after=retry_after,
            code=str(status),
        )

    def _retry_after(self, headers: Any) -> float | None:
        if headers is None:
            return None
        # SendGrid documents X-RateLimit-Reset (epoch seconds) on its 429s; a proxy in
        # front of it may speak the standard Retry-After instead.
        reset = headers.get("X-RateLimit-Reset")
        if reset is not None:
            try:
                return max(0.0, float(reset) - self._clock())
            except ValueError:
                pass
        retry_after = headers.get("Retry-After")
        return retry_after_seconds(str(retry_after), self._clock()) if retry_after else None


def _first_error(body: Any) -> str:
    """``": <message>"`` from SendGrid's ``{"errors": [{"message": ...}]}``, scrubbed."""
    try:
        errors = json.loads(body)["errors"]
        text = str(errors[0]["message"])
    except (TypeError, ValueError, KeyError, IndexError):
        return ""
    return f": {scrub(text)}"
