"""Email through SendGrid's v3 Mail Send API, with the official SDK.

Everything SendGrid-specific lives here: sending and its status verdicts, the signed
event webhook (ECDSA over timestamp + raw body, checked with the SDK's ``EventWebhook``;
the SDK does not look at the timestamp's age, so a stale one is refused here) and the
verdict on each event.
"""

from __future__ import annotations

import binascii
import hashlib
import http.client
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from sendgrid.helpers.mail import From, Mail, SendGridException, To

from forewarn.notifier.channels import (
    DeliveryError,
    DeliveryFailure,
    Medium,
    Outbound,
    ProviderReport,
    Receipt,
    Refused,
    SignedRequest,
    Unplaced,
    bounded,
    retry_after_seconds,
    row_id,
)
from forewarn.notifier.privacy import mask_address, mask_email, scrub

EVENTS_PATH = "/webhooks/sendgrid/events"

STATUSES = {
    "processed": "sent",
    "delivered": "delivered",
    "bounce": "bounced",
    "dropped": "bounced",
}
"""SendGrid event -> our status. ``deferred`` is the receiving server asking SendGrid to
try later (SendGrid does, for up to 72 h): we wait. ``open``/``click`` say nothing about
delivery we do not know: stored, status unchanged."""

OPT_OUTS = frozenset({"unsubscribe", "group_unsubscribe", "spamreport"})

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


# ------------------------------------------------------------------------------ webhooks


def event_failure(kind: str, bounce_type: str | None, reason: str) -> DeliveryFailure | None:
    """The verdict on an event: a hard ``bounce`` or a ``dropped`` message will never
    arrive (fall back to the next channel); a ``blocked`` bounce (the receiving server
    refused it for now, e.g. reputation or rate) is retried; anything else is no failure."""
    if kind == "dropped":
        return DeliveryFailure(True, f"sendgrid dropped the email: {reason}")
    if kind == "bounce":
        if bounce_type == "blocked":
            return DeliveryFailure(False, f"sendgrid: blocked by the receiving server: {reason}")
        return DeliveryFailure(True, f"sendgrid: bounced: {reason}")
    return None


class SendGridEventWebhook:
    """SendGrid's signed event webhook: batches of up to about 1 000 events."""

    provider = "sendgrid"
    path = EVENTS_PATH

    def __init__(self, public_key: str, max_age: timedelta) -> None:
        self._verifier = EventWebhook(public_key)
        self._max_age = max_age

    def verify(self, request: SignedRequest, now: datetime) -> None:
        signature = request.headers.get(EventWebhookHeader.SIGNATURE.lower(), "")
        timestamp = request.headers.get(EventWebhookHeader.TIMESTAMP.lower(), "")
        if not _fresh(timestamp, now, self._max_age):
            raise Refused(403, "stale or missing timestamp")
        try:
            valid = bool(
                self._verifier.verify_signature(request.body.decode("utf-8"), signature, timestamp)
            )
        except (UnicodeError, binascii.Error, ValueError, TypeError):
            valid = False
        if not valid:
            raise Refused(403, "invalid signature")

    def parse(self, request: SignedRequest) -> Sequence[ProviderReport | Unplaced]:
        try:
            events = json.loads(request.body)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the stack
            raise Refused(400, "body is not JSON") from None
        if not isinstance(events, list):
            raise Refused(400, "expected a JSON array of events")
        return [self._event(event) for event in events]

    def _event(self, event: Any) -> ProviderReport | Unplaced:
        """One event; one forewarn cannot place is returned as :class:`Unplaced`, so
        the rest of the batch is kept (SendGrid drops a batch it retried too often)."""
        if not isinstance(event, dict):
            return self._unplaced(event, "an event is not a JSON object")
        try:
            if "\\u0000" in json.dumps(event):  # PostgreSQL text and jsonb refuse NUL
                raise Refused(400, "a field contains NUL")
            event_id = bounded("sg_event_id", str(event.get("sg_event_id") or ""), 200)
            if not event_id:
                raise Refused(400, "sg_event_id is missing")
            kind = bounded("event", str(event.get("event", "")), 32)
            raw_id = event.get("notification_id")
            notification = row_id(str(raw_id)) if isinstance(raw_id, str | int) else None
            message_id = (
                bounded("sg_message_id", str(event.get("sg_message_id", "")), 1000).split(".", 1)[0]
                or None
            )
            if message_id is not None:
                bounded("sg_message_id", message_id, 128)
            code = bounded("status", str(event["status"]), 32) if event.get("status") else None
        except Refused as refused:
            return self._unplaced(event, refused.reason)
        reason = scrub(str(event.get("reason") or event.get("response") or kind))[:500]
        payload = {
            k: (mask_address(str(v)) if k == "email" else scrub(str(v)) if k == "reason" else v)
            for k, v in event.items()
        }
        bounce_type = event.get("type")
        return ProviderReport(
            provider=self.provider,
            event_id=event_id,
            status=kind,
            new_status=STATUSES.get(kind),
            notification_id=notification,
            provider_message_id=message_id,
            error_code=code,
            opt_out=kind in OPT_OUTS,
            payload=payload,
            failure=event_failure(
                kind, bounce_type if isinstance(bounce_type, str) else None, reason
            ),
        )

    def _unplaced(self, event: Any, reason: str) -> Unplaced:
        text = json.dumps(event, sort_keys=True, default=str)
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        return Unplaced(self.provider, f"unplaced:{digest}", reason, scrub(repr(event)[:300]))


def _fresh(timestamp: str, now: datetime, max_age: timedelta) -> bool:
    if not (timestamp.isascii() and timestamp.isdecimal()) or len(timestamp) > 12:
        return False
    try:
        sent = datetime.fromtimestamp(int(timestamp), UTC)
    except (ValueError, OverflowError, OSError):
        return False
    return abs(now - sent) <= max_age
