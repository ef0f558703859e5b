"""Ticketing: SLA, escalation, dispatch preferences and the people alerted about tickets."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import (
    Field,
    model_validator,
)

from forewarn.config.schema.base import Duration, Identifier, Model, Phone, Severity, TimeZoneName

DEFAULT_SLA: dict[Severity, timedelta] = {
    "critical": timedelta(hours=4),
    "major": timedelta(hours=24),
    "minor": timedelta(days=3),
    "info": timedelta(days=7),
}


DEFAULT_ACK_WITHIN: dict[Severity, timedelta] = {
    "critical": timedelta(minutes=15),
    "major": timedelta(hours=1),
    "minor": timedelta(hours=4),
    "info": timedelta(hours=8),
}


class ContactSettings(Model):
    """A person forewarn alerts about tickets (the dispatcher, a supervisor)."""

    name: str
    phone: Phone | None = None
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    locale: str = "en"
    timezone: TimeZoneName = "UTC"
    channels: tuple[Literal["sms", "email"], ...] = ("sms", "email")
    """Alerts go out on every listed channel."""

    @model_validator(mode="after")
    def _reachable(self) -> ContactSettings:
        if not self.phone and not self.email:
            raise ValueError("give a phone or an email, or nobody will be told")
        return self


class EscalationSettings(Model):
    """What happens when an assigned technician does not answer."""

    ack_within: dict[Severity, Duration] = Field(default_factory=lambda: dict(DEFAULT_ACK_WITHIN))
    """How long a technician has to ACK before the job passes on, per severity."""
    handoffs: int = Field(1, ge=0, le=10)
    """How many further technicians are tried (next best each time) before the supervisor."""
    supervisor: ContactSettings | None = None
    """Told when the handoffs are used up; without one, the dispatcher is told."""


class PreferenceSettings(Model):
    """Preferred and excluded technicians for one customer or one site."""

    customer: Identifier | None = None
    site: Identifier | None = None
    preferred: tuple[Identifier, ...] = ()
    """Scored ahead of equally suited technicians (never over a hard filter)."""
    excluded: tuple[Identifier, ...] = ()
    """Never dispatched here."""

    @model_validator(mode="after")
    def _one_target(self) -> PreferenceSettings:
        if (self.customer is None) == (self.site is None):
            raise ValueError("set exactly one of 'customer' or 'site'")
        return self


class TicketingSettings(Model):
    """Tickets and work orders."""

    sla: dict[Severity, Duration] = Field(default_factory=lambda: dict(DEFAULT_SLA))
    """Time to resolution promised per severity."""
    reopen_within: Duration = timedelta(days=7)
    """A fault that comes back this soon after its ticket was resolved reopens that ticket
    (a repeat visit); later, a new ticket is opened and linked to the old one."""
    on_alert_cleared: Literal["auto_close", "keep"] = "auto_close"
    """When every alert of a ticket clears before anyone is on the way: ``auto_close``
    after ``cleared_grace``, or ``keep`` the ticket for inspection."""
    cleared_grace: Duration = timedelta(hours=2)
    """How long a cleared fault must stay cleared before its ticket is closed."""
    escalation: EscalationSettings = EscalationSettings()
    """No ACK in time: the next best technician, then the supervisor."""
    dispatcher: ContactSettings | None = None
    """Told when no eligible technician exists for a ticket (it waits in the dispatcher
    queue on the console either way)."""
    preferences: tuple[PreferenceSettings, ...] = ()
    """Preferred / excluded technicians per customer or site."""
    sweep_interval: Duration = timedelta(seconds=30)
    """How often escalations, declined jobs and auto-closes are processed."""
