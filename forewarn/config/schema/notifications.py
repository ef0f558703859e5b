"""Notification providers and delivery policy."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import (
    Field,
)

from forewarn.config.schema.base import Duration, Model


class TwilioSettings(Model):
    """Twilio SMS."""

    from_number: str = Field(pattern=r"^\+[1-9]\d{6,14}$")
    """Sending number. Credentials: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN."""
    timeout: Duration = timedelta(seconds=10)
    status_callback_url: str | None = None
    """Public URL of forewarn's ``/webhooks/twilio/status`` for delivery receipts."""
    api_url: str | None = Field(None, pattern=r"^https?://")
    """Send Twilio's API requests here instead of ``https://*.twilio.com`` (an egress
    proxy, or a local stand-in for tests); unset in production."""
    number_type: Literal["long_code", "toll_free", "short_code"] = "long_code"
    """What ``from_number`` is; it sets the pace Twilio sends from it: ``long_code`` 1 SMS
    a second, ``toll_free`` 3, ``short_code`` 100. Every sender process shares the pace
    (a token bucket in the database); critical messages go first."""
    rate: float | None = Field(None, gt=0, le=10_000)
    """Messages per second from ``from_number``, overriding ``number_type`` (a long code
    with a raised limit, a messaging service)."""
    burst: float | None = Field(None, ge=1, le=10_000)
    """Messages that may leave at once after a quiet spell; unset: one second's worth."""


class SendGridSettings(Model):
    """SendGrid email."""

    from_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    """Sender address. Credential: SENDGRID_API_KEY."""
    from_name: str = "forewarn"
    timeout: Duration = timedelta(seconds=10)
    api_url: str | None = Field(None, pattern=r"^https?://")
    """SendGrid's API host, e.g. ``https://api.eu.sendgrid.com`` for EU data residency
    (or a local stand-in for tests); unset: ``https://api.sendgrid.com``."""
    rate: float = Field(100.0, gt=0, le=10_000)
    """Mail-send requests per second with SENDGRID_API_KEY, shared by every sender
    process (a token bucket in the database); set it to your plan's limit. Beyond it
    SendGrid answers 429 and the message waits for ``X-RateLimit-Reset``."""
    burst: float | None = Field(None, ge=1, le=10_000)
    """Requests that may leave at once after a quiet spell; unset: one second's worth."""


class SmtpSettings(Model):
    """Email through an SMTP relay (instead of SendGrid). Password: SMTP_PASSWORD."""

    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    """``starttls`` (port 587), ``tls`` (implicit TLS, port 465) or ``none`` (a local relay)."""
    username: str | None = None
    from_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    from_name: str = "forewarn"
    timeout: Duration = timedelta(seconds=10)


class WebhookChannelSettings(Model):
    """Messages POSTed as signed JSON to a URL of yours. Secret: FOREWARN_WEBHOOK_SECRET."""

    url: str = Field(pattern=r"^https?://")
    medium: Literal["sms", "email"] = "sms"
    """Which channel name it serves: your gateway then stands in for Twilio or email."""
    timeout: Duration = timedelta(seconds=10)


class NotificationSettings(Model):
    """Providers and delivery policy."""

    twilio: TwilioSettings | None = None
    """Without it (or without credentials) SMS goes to the development channel."""
    sendgrid: SendGridSettings | None = None
    """Without it (or without the API key) email goes to the development channel."""
    default_locale: str = "en"
    """Last step of the locale fallback (``pt-BR -> pt -> default``)."""
    development_log: str | None = None
    """File the development channel appends messages to (besides the console and store)."""
    give_up_after: Duration = timedelta(hours=24)
    """How long transient failures (provider down, 429, timeouts, an unreachable handset)
    keep being retried, counted from the message's first attempt. Only this budget or a
    permanent verdict ends a message as failed (then the next channel is tried). Twilio's
    own queue holds a message for 10 h; a longer budget here rides out longer outages."""
    retry_base: Duration = timedelta(seconds=5)
    """Ceiling of the first retry delay; the ceiling doubles per attempt up to
    ``retry_cap`` and each delay is drawn uniformly below it (full jitter)."""
    retry_cap: Duration = timedelta(minutes=15)
    """Largest delay between two attempts of one message (a provider's ``Retry-After``
    may ask for longer and is honoured)."""
    lease: Duration = timedelta(seconds=60)
    """How long a sender owns a claimed message before another may reclaim it."""
    sender_threads: int = Field(4, ge=1, le=8)
    """Threads each sender process sends on; each claims its own rows, so none is sent
    twice. At most 8: each holds a database connection while it sends, and a process's
    connection pool has 10."""
    smtp: SmtpSettings | None = None
    """Email through SMTP; used when SendGrid is not configured."""
    webhook: WebhookChannelSettings | None = None
    """A generic signed webhook; replaces the SMS or email channel it names."""
    contact_budget: int = Field(3, ge=1, le=100)
    """Proactive messages per customer per rolling day; more wait (critical ones do not)."""
    merge_window: Duration = timedelta(minutes=2)
    """Proactive notices wait this long so that several issues go out as one message."""
    follow_up_within: Duration = timedelta(hours=24)
    """A proactive notice with no update, all-clear or apology after this is an ops alert."""
    human_response_sla: Duration = timedelta(hours=2)
    """How soon a person must answer a customer who wrote HUMAN or free text."""
    webhook_max_age: Duration = timedelta(minutes=5)
    """Signed provider events older (or newer) than this are refused as replays."""
    stop_scope: Literal["all", "sms"] = "all"
    """STOP by SMS opts the customer out of every channel (``all``) or of SMS only."""
