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
* The provider's SDK is imported only in that channel's module.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from typing import Literal, Protocol

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
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
