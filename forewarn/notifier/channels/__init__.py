"""Delivery channels: one module per provider, each one class with one ``send()``.

The contract, documented once here:

* ``send(message)`` delivers one :class:`Outbound` and returns a :class:`Receipt` when the
  provider has accepted it.
* Any failure is raised as :class:`DeliveryError` with ``permanent=True`` when retrying
  cannot help (invalid number, unsubscribed recipient, rejected request) and
  ``permanent=False`` when it can (timeouts, 429, 5xx); ``retry_after`` carries the
  provider's hint in seconds when it gave one. The provider's own exception is chained with
  ``from``. The sender (``notifier/sender.py``) is the one place that catches it and stores
  the outcome on the notification row.
* The provider's SDK is imported only in that channel's module. The module also owns the
  provider's error/verdict table, its webhooks' signature check and the parsing of its
  delivery receipts (:class:`ReceiptWebhook`) and inbound messages
  (:class:`InboundWebhook`); ``notifier/webhooks.py`` only routes requests to them.

Webhook input is hostile until proven otherwise: a check that fails raises
:class:`Refused` with the HTTP status to answer (403 for a bad signature, 400 for a field
forewarn cannot store), never an exception that would become a 500.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

Medium = Literal["sms", "email"]


@dataclass(frozen=True)
class Outbound:
    """One rendered message to one recipient."""

    notification_id: int
    to: str
    """E.164 number for SMS, address for email."""
    body: str
    """The SMS text, or the plain-text part of an email."""
    subject: str | None = None
    html: str | None = None
    to_name: str | None = None


@dataclass(frozen=True)
class Receipt:
    """The provider accepted the message."""

    provider: str
    provider_message_id: str | None
    status: str = "sent"


class DeliveryError(Exception):
    """Sending failed; ``permanent`` says whether a retry could ever succeed."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.code = code


class Channel(Protocol):
    """A way to deliver messages of one medium through one provider."""

    provider: str
    medium: Medium

    def send(self, message: Outbound) -> Receipt: ...


def retry_after_seconds(value: str, now: float) -> float | None:
    """A ``Retry-After`` value (delta-seconds or HTTP-date) as seconds from ``now``."""
    value = value.strip()
    if value.isascii() and value.isdecimal():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


# ------------------------------------------------------------------------------ webhooks

MAX_ROW_ID = 2**31 - 1
"""Ids are 32-bit integers on PostgreSQL: a larger one in a callback is refused, not looked
up (the driver would raise)."""


class Refused(Exception):
    """A webhook request forewarn will not act on; ``status`` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class SignedRequest:
    """A provider's webhook request as received, before anything trusts it."""

    url: str
    """The public URL the provider called (``web.public_url`` + path + query)."""
    query: Mapping[str, str]
    headers: Mapping[str, str]
    """Header names in lower case."""
    body: bytes


@dataclass(frozen=True)
class DeliveryFailure:
    """A receipt's verdict that the message did not arrive, from the channel's table."""

    permanent: bool
    reason: str


@dataclass(frozen=True)
class ProviderReport:
    """One delivery receipt, as the channel parsed it."""

    provider: str
    event_id: str
    status: str
    """The provider's word for it."""
    new_status: str | None
    """Our status it maps to, or None if it changes nothing."""
    notification_id: int | None
    provider_message_id: str | None = None
    error_code: str | None = None
    opt_out: bool = False
    """The recipient unsubscribed or marked us as spam."""
    payload: dict[str, Any] | None = None
    failure: DeliveryFailure | None = None
    """Set when the provider says the message did not reach the recipient."""


@dataclass(frozen=True)
class Unplaced:
    """One event of a batch that forewarn cannot store or place, with the reason."""

    provider: str
    event_id: str
    """A stable id for it (the provider's, or a digest of the event), so a redelivered
    batch records it once."""
    reason: str
    excerpt: str


class ReceiptWebhook(Protocol):
    """A provider's delivery-receipt callback, owned by its channel module."""

    provider: str
    path: str

    def verify(self, request: SignedRequest, now: datetime) -> None:
        """Raise :class:`Refused` (403) unless the provider signed this request."""
        ...

    def parse(self, request: SignedRequest) -> Sequence[ProviderReport | Unplaced]:
        """The receipts in a verified request; an event that cannot be placed comes back
        as :class:`Unplaced` (the rest are kept). Raises :class:`Refused` (400) when the
        request as a whole is unreadable."""
        ...


class InboundWebhook(Protocol):
    """A provider's incoming-message callback, owned by its channel module."""

    provider: str
    path: str
    media_type: str

    def verify(self, request: SignedRequest, now: datetime) -> None: ...

    def parse(self, request: SignedRequest) -> InboundText:
        """The message in a verified request; :class:`Refused` (400) when unusable."""
        ...

    def reply(self, text: str | None) -> str:
        """The response body that answers the sender with ``text`` (or nothing)."""
        ...


@dataclass(frozen=True)
class InboundText:
    """A message a customer or technician sent us."""

    message_sid: str
    from_: str
    to: str
    body: str


def row_id(value: str | None) -> int | None:
    """A notification id from a callback (ASCII digits within range), or None."""
    if value is None or not value:
        return None
    if not (value.isascii() and value.isdecimal()) or len(value) > 10:
        raise Refused(400, "notification id is not a number forewarn issued")
    number = int(value)
    if number > MAX_ROW_ID:
        raise Refused(400, "notification id is out of range")
    return number


def bounded(name: str, value: str, limit: int) -> str:
    """``value`` if it fits a column of ``limit`` characters and holds no NUL."""
    if len(value) > limit:
        raise Refused(400, f"{name} is longer than {limit} characters")
    if "\x00" in value:
        raise Refused(400, f"{name} contains NUL")
    return value
