"""The fleet and the people: customers, sites, devices, technicians and their shifts."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import (
    Field,
    model_validator,
)

from forewarn.config.schema.base import Hours, Identifier, Model, Phone, TimeZoneName


class Location(Model):
    """Coordinates in decimal degrees."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class CustomerSettings(Model):
    """A customer who receives proactive notices."""

    id: Identifier
    name: str
    phone: Phone | None = None
    """Mobile number for SMS, e.g. ``+351912345678`` (or ``912 345 678`` with
    ``phone_region: PT``); stored as E.164."""
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    locale: str = "en"
    """Language of messages (``pt-BR`` falls back to ``pt`` then the default)."""
    timezone: TimeZoneName = "UTC"
    channels: tuple[Literal["sms", "email"], ...] = ("sms", "email")
    """Channels in order of preference."""
    quiet_hours: Hours | None = None
    """Local hours with no non-critical messages, e.g. ``22:00-07:00``."""


class SiteSettings(Model):
    """A place with devices: a home, a plant, a shop."""

    id: Identifier
    name: str
    customer: Identifier
    address: str = ""
    """Street address: in work-order emails only, never in SMS."""
    region: str
    """Service region; technicians serve a list of regions."""
    timezone: TimeZoneName = "UTC"
    """IANA zone of the site (maintenance windows, local times in messages)."""
    location: Location | None = None
    """Used to measure technicians' distance."""


class DeviceSettings(Model):
    """One monitored device."""

    id: Identifier
    """The id the device publishes under (topic level or payload field)."""
    site: Identifier
    model: str
    """Product model; threshold overrides can target it."""
    kind: str
    """Product type, matched against technician skills (e.g. ``inverter``)."""
    serial: str = ""
    """Shown in work-order emails, never in SMS."""
    tags: tuple[str, ...] = ()
    """Free labels (``rooftop``, ``pilot-2027``) that silences can match."""
    parent: Identifier | None = None
    """The device this one reaches forewarn through (its gateway): while the parent is
    offline, this device's offline alerts are inhibited (see ``alerting.inhibit``)."""


class ShiftSettings(Model):
    """Working hours on some weekdays, e.g. ``{days: [mon, tue, wed, thu, fri], hours:
    "08:00-17:00"}``; a window like ``22:00-06:00`` ends the next morning."""

    # Spelled out rather than reusing ``Weekday`` (defined further down, with the order
    # rules), so this model does not depend on declaration order.
    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = (
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
    )
    """Weekdays the shift starts on."""
    hours: Hours
    """Local start and end, e.g. ``08:00-17:00``."""


class TechnicianSettings(Model):
    """A field technician who can be dispatched."""

    id: Identifier
    name: str
    phone: Phone | None = None
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    locale: str = "en"
    timezone: TimeZoneName = "UTC"
    skills: tuple[str, ...]
    """Product types this technician can repair."""
    regions: tuple[str, ...]
    max_jobs: int = Field(3, ge=1)
    """Open work orders this technician can carry at once."""
    home: Location | None = None
    """Home base; the nearer technician wins between equally loaded ones."""
    channels: tuple[Literal["sms", "email"], ...] = ("sms", "email")
    """Work orders go out on every listed channel."""
    shifts: tuple[ShiftSettings, ...] = ()
    """Working hours in the technician's time zone; none means always on duty (on call)."""
    days_off: tuple[date, ...] = ()
    """Local dates with no shift (holidays, leave), e.g. ``2026-12-25``."""
    radius_km: float | None = Field(None, gt=0)
    """Also serve any site within this distance of ``home``, whatever its region."""

    @model_validator(mode="after")
    def _radius_needs_home(self) -> TechnicianSettings:
        if self.radius_km is not None and self.home is None:
            raise ValueError("'radius_km' needs 'home' (the point the radius is measured from)")
        return self
