"""SMS through Twilio's Programmable Messaging API, with the official SDK.

Everything Twilio-specific lives here: sending, the error-code verdict table (used for the
API's refusals and for the ErrorCode of a failed status callback alike), the status
callback and inbound SMS webhooks (``X-Twilio-Signature`` checked with the SDK's
``RequestValidator`` over the exact public URL Twilio called) and the TwiML reply.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from forewarn.notifier.channels import (
    DeliveryError,
    DeliveryFailure,
    InboundText,
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
from forewarn.notifier.privacy import mask_address, mask_phone, scrub

STATUS_PATH = "/webhooks/twilio/status"
INBOUND_PATH = "/webhooks/twilio/inbound"
SIGNATURE_HEADER = "x-twilio-signature"

STATUSES = {
    "accepted": "queued",
    "queued": "queued",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "undelivered",
}
"""Twilio's ``MessageStatus`` -> ours."""

ERROR_CODES: dict[int, tuple[bool, str]] = {
    # code: (permanent, reason). The 2xxxx codes come back from the API call itself;
    # the 3xxxx ones arrive later as ErrorCode on the status callback and are kept here
    # so that receipts are judged by the same table.
    #
    # The recipient itself can never receive this message: retrying only costs money.
    21211: (True, "invalid 'To' phone number"),
    21614: (True, "'To' number is not a mobile number"),
    21612: (True, "'To' number cannot be reached from this sender"),
    # The recipient replied STOP; sending again would break the opt-out (and the law).
    21610: (True, "recipient has unsubscribed (STOP)"),
    # The account is not allowed to send to that country: a console setting, not a glitch.
    21408: (True, "sending to this region is not enabled on the account"),
    # Trial accounts only reach verified numbers; fixed by upgrading, not by waiting.
    21608: (True, "trial account cannot send to an unverified number"),
    # The request itself is wrong; the same request fails the same way every time.
    21602: (True, "message body is empty"),
    21604: (True, "'To' phone number is missing"),
    21617: (True, "message body exceeds 1600 characters"),
    21212: (True, "invalid 'From' phone number"),
    21606: (True, "'From' number cannot send SMS for this account"),
    20003: (True, "authentication failed (account SID or auth token)"),
    20404: (True, "account or resource not found"),
    # Delivery receipts. A blocked, unknown, landline or carrier-filtered destination
    # stays that way; an unreachable handset (30003) is often just switched off.
    30003: (False, "handset unreachable (off or out of coverage)"),
    30002: (True, "account suspended"),
    30004: (True, "message blocked by the recipient or the carrier"),
    30005: (True, "unknown or inactive destination number"),
    30006: (True, "landline or unreachable carrier"),
    30007: (True, "filtered by the carrier as spam"),
    30008: (False, "unknown delivery error"),
    # Capacity, not content: the same message goes through later.
    20429: (False, "too many concurrent requests to Twilio"),
    21611: (False, "the 'From' number's queue is full"),
    30001: (False, "Twilio's queue overflowed"),
}

# requests errors that mean our configuration is wrong, not that the network hiccupped.
_BROKEN_REQUEST = (
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidHeader,
    requests.exceptions.URLRequired,
)


class TwilioSms:
    """Sends SMS with ``twilio.rest.Client``; one ``messages.create`` per :class:`Outbound`.

    Twilio has no idempotency key: a request that times out after Twilio accepted it is
    retried and the customer may get the message twice. The timeout bounds how long a
    sender thread can hang, and the caller marks the row sent straight after ``send()``.

    ``timeout`` configures the default HTTP client; a given ``http_client`` (a proxy
    setup, the tests' local fake) brings its own. ``clock`` turns a ``Retry-After`` given
    as an HTTP-date into seconds.
    """

    provider = "twilio"
    medium: Medium = "sms"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        *,
        timeout: float = 10.0,
        status_callback: str | None = None,
        http_client: TwilioHttpClient | None = None,
        api_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # The SDK's own default client has no timeout at all: it would wait forever.
        self._http = _HeaderKeeper(
            http_client or TwilioHttpClient(timeout=timeout), api_url=api_url
        )
        self._client = Client(account_sid, auth_token, http_client=self._http)
        self._from = from_number
        self._status_callback = status_callback
        self._clock = clock

    def send(self, message: Outbound) -> Receipt:
        params: dict[str, str] = {"to": message.to, "from_": self._from, "body": message.body}
        if self._status_callback is not None:
            # The row's id rides in the URL (Twilio signs the full URL), so a receipt finds
            # its notification even if it overtakes the sender's "sent" commit.
            joiner = "&" if "?" in self._status_callback else "?"
            params["status_callback"] = (
                f"{self._status_callback}{joiner}notification={message.notification_id}"
            )
        try:
            created = self._client.messages.create(**params)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise self._rejected(exc, message.to) from exc
        except _BROKEN_REQUEST as exc:
            raise DeliveryError(
                f"twilio request is malformed ({type(exc).__name__}); check the configuration",
                permanent=True,
            ) from exc
        except requests.RequestException as exc:
            raise DeliveryError(
                f"twilio unreachable ({type(exc).__name__}) sending to {mask_phone(message.to)}",
                permanent=False,
            ) from exc
        sid = created.sid
        return Receipt(provider=self.provider, provider_message_id=str(sid) if sid else None)

    def _rejected(
        self, exc: TwilioRestException | TwilioServiceException, to: str
    ) -> DeliveryError:
        status = int(exc.status)
        code = int(exc.code) if exc.code is not None else None
        known = ERROR_CODES.get(code) if code is not None else None
        if known is not None:
            permanent, reason = known
        else:
            # Unknown code: judge by the HTTP status. A 4xx is our request and fails the
            # same way again, except a timeout or a rate limit; a 5xx is Twilio's trouble.
            permanent = 400 <= status < 500 and status not in (408, 409, 425, 429)
            detail = exc.msg if isinstance(exc, TwilioRestException) else exc.title
            reason = scrub(str(detail))
        retry_after = None if permanent else self._retry_after()
        return DeliveryError(
            f"twilio refused the SMS to {mask_phone(to)}: {reason} (HTTP {status}, code {code})",
            permanent=permanent,
            retry_after=retry_after,
            code=str(code) if code is not None else None,
        )

    def _retry_after(self) -> float | None:
        headers = self._http.last_headers() or {}
        # requests gives a case-insensitive mapping, another HttpClient may not.
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        return retry_after_seconds(value, self._clock()) if value else None


class _HeaderKeeper(HttpClient):  # type: ignore[misc]  # the twilio SDK is untyped
    """Delegates every request and remembers the response headers, per thread.

    ``TwilioRestException`` carries the status, code and message but not the headers,
    so a ``Retry-After`` on a 429 or 503 would otherwise be lost. Thread-local because
    one channel serves every sender thread.
    """

    def __init__(self, inner: HttpClient, *, api_url: str | None = None) -> None:
        super().__init__(inner.logger, False, inner.timeout)
        self._inner = inner
        self._seen = threading.local()
        # The SDK builds absolute https://<product>.twilio.com URLs; edge=/region= can
        # only pick another Twilio host, so a proxy or stand-in is reached by rewriting.
        self._api_url = api_url.rstrip("/") if api_url else None

    def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Any:
        self._seen.headers = None
        if self._api_url is not None:
            parts = urlsplit(uri)
            host = parts.hostname or ""
            if host == "twilio.com" or host.endswith(".twilio.com"):
                uri = self._api_url + parts.path + (f"?{parts.query}" if parts.query else "")
        response = self._inner.request(
            method,
            uri,
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
        self._seen.headers = response.headers
        return response

    def last_headers(self) -> Mapping[str, str] | None:
        headers: Mapping[str, str] | None = getattr(self._seen, "headers", None)
        return headers


# ------------------------------------------------------------------------------ webhooks


def receipt_failure(status: str, code: str | None) -> DeliveryFailure | None:
    """The verdict on a status callback: None unless Twilio says the SMS did not arrive.

    ``undelivered``/``failed`` are judged by :data:`ERROR_CODES`, like a refusal of the
    API call: 30005 (unknown number) or 30006 (landline) will never arrive and fall back
    to the next channel; 30003 (handset off) or 30008 (unknown) may arrive later and are
    retried. A code missing from the table is retried too (bounded by give_up_after):
    delaying a message costs less than dropping one on a guess.
    """
    if STATUSES.get(status) != "undelivered":
        return None
    number = int(code) if code and code.isascii() and code.isdecimal() else None
    known = ERROR_CODES.get(number) if number is not None else None
    if known is None:
        return DeliveryFailure(False, f"twilio {status}, error {code or 'not given'}")
    permanent, reason = known
    return DeliveryFailure(permanent, f"twilio {status}: {reason} (code {code})")


class _TwilioWebhook:
    provider = "twilio"

    def __init__(self, auth_token: str) -> None:
        self._validator = RequestValidator(auth_token)

    def verify(self, request: SignedRequest, now: datetime) -> None:
        params = _form(request)
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature or not self._validator.validate(request.url, params, signature):
            raise Refused(403, "invalid signature")


class TwilioStatusWebhook(_TwilioWebhook):
    """Message status callbacks (``status_callback`` of each message we send)."""

    path = STATUS_PATH

    def parse(self, request: SignedRequest) -> Sequence[ProviderReport | Unplaced]:
        params = _form(request)
        if any("\x00" in k or "\x00" in v for k, v in params.items()):
            raise Refused(400, "a field contains NUL")
        status = bounded("MessageStatus", params.get("MessageStatus") or "", 32)
        sid = bounded("MessageSid", params.get("MessageSid") or params.get("SmsSid") or "", 64)
        code = bounded("ErrorCode", params.get("ErrorCode") or "", 32) or None
        payload = {k: (mask_address(v) if k in ("From", "To") else v) for k, v in params.items()}
        return [
            ProviderReport(
                provider=self.provider,
                event_id=f"{sid}:{status}",
                status=status,
                new_status=STATUSES.get(status),
                notification_id=row_id(request.query.get("notification")),
                provider_message_id=sid or None,
                error_code=code,
                payload=payload,
                failure=receipt_failure(status, code),
            )
        ]


class TwilioInboundWebhook(_TwilioWebhook):
    """Incoming SMS to our number; the answer is TwiML."""

    path = INBOUND_PATH
    media_type = "application/xml"

    def parse(self, request: SignedRequest) -> InboundText:
        params = _form(request)
        message = InboundText(
            message_sid=bounded(
                "MessageSid", params.get("MessageSid") or params.get("SmsSid") or "", 64
            ),
            from_=bounded("From", params.get("From", ""), 64),
            to=bounded("To", params.get("To", ""), 64),
            body=bounded("Body", params.get("Body", ""), 100_000),
        )
        if not message.message_sid or not message.from_:
            raise Refused(400, "MessageSid and From are required")
        return message

    def reply(self, text: str | None) -> str:
        twiml = MessagingResponse()
        if text:
            twiml.message(text)
        return str(twiml)


def _form(request: SignedRequest) -> dict[str, str]:
    try:
        return dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        raise Refused(403, "invalid signature") from None
