"""Ticketing: SLA, escalation, dispatch preferences and the people alerted about tickets."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Literal

from pydantic import (
    Field,
    model_validator,
)

from forewarn.config.schema.base import (
    Duration,
    Hours,
    HoursWindow,
    Identifier,
    Model,
    Phone,
    Severity,
    TimeZoneName,
)

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


class AppointmentSettings(Model):
    """Visit windows proposed to the customer when a technician is chosen."""

    enabled: bool = True
    """Propose windows (the customer confirms one by SMS reply or a signed email link);
    ``false``: the customer is only told who is coming, as before."""
    slot: Duration = timedelta(hours=2)
    """Length of each arrival window (e.g. ``2h`` or ``4h``)."""
    options: int = Field(3, ge=1, le=5)
    """Windows per proposal. The customer replies 1..N to book one, N+1 for other times."""
    speed_kmh: float = Field(40.0, gt=0, le=200)
    """Average driving speed, for the travel time from home base or the previous visit
    (straight-line distance)."""
    notice: Duration = timedelta(hours=1)
    """The earliest window starts at least this long after the proposal."""
    visiting_hours: Hours = HoursWindow(start=time(8), end=time(20))
    """Windows lie within these hours, local to the customer's site (not across midnight)."""
    remind_at: time = time(18)
    """The reminder goes at this local time (customer's zone) on the day before the visit,
    unless it falls in their quiet hours (then it waits for the morning)."""
    link_valid_for: Duration = timedelta(days=7)
    """How long the signed confirmation links in the email work (never past the window's
    start). Links need ``web.public_url`` and ``FOREWARN_LINK_SECRET``."""

    @model_validator(mode="after")
    def _daytime(self) -> AppointmentSettings:
        hours = self.visiting_hours
        if hours.end != time(0) and hours.end <= hours.start:
            raise ValueError("visiting_hours must not cross midnight (e.g. '08:00-20:00')")
        if self.slot <= timedelta(0):
            raise ValueError("slot must be longer than zero")
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
    appointments: AppointmentSettings = AppointmentSettings()
    """Visit windows: proposed from the technician's shifts, visits and travel, inside
    the SLA; confirmed by the customer; reminded the day before."""
