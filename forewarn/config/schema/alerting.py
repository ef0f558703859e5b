"""Alerting: silences and maintenance windows, inhibition, flapping."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import (
    Field,
    model_validator,
)

from forewarn.config.schema.base import Duration, Hours, Identifier, Model, TimeZoneName
from forewarn.config.schema.orders import Weekday


class SilenceSettings(Model):
    """A silence or maintenance window: matching alerts are recorded but open no ticket and
    notify nobody. Every given list must match (device, site, model, tag, rule)."""

    id: Identifier
    comment: str = ""
    """Why, for the people reading the alert later."""
    created_by: str = "config"
    devices: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    """Service areas (the sites' ``region``): every device at a site in one of them."""
    rules: tuple[str, ...] = ()
    """Only these monitors' alerts; empty: every monitor."""
    starts: datetime | None = None
    """First moment; without a UTC offset it is local time in the site's zone."""
    ends: datetime | None = None
    """Last moment (exclusive); without a UTC offset it is local time in the site's zone."""
    days: tuple[Weekday, ...] = ()
    """Recurring: the local weekdays the ``hours`` start on; empty with ``hours``: daily."""
    hours: Hours | None = None
    """Recurring local hours such as ``22:00-06:00`` in the site's zone (DST-safe: wall
    clock time, so a window always covers the same local hours)."""
    timezone: TimeZoneName | None = None
    """Zone of ``starts``, ``ends`` and ``hours``; default: each device's site zone."""
    notify_customers: bool = False
    """Planned maintenance: tell the customers of the devices it covers ``notice_before``
    it starts (in their language and zone), tell them if it is extended and when it is
    over. Only for a one-off window (``starts`` and ``ends``, no ``hours``)."""
    notice_before: Duration | None = None
    """How long before ``starts`` the customers are told; default
    ``care.maintenance_notice_before``."""

    @model_validator(mode="after")
    def _bounded(self) -> SilenceSettings:
        if not (
            self.devices or self.sites or self.models or self.tags or self.regions or self.rules
        ):
            raise ValueError("match something: set devices, sites, models, tags, regions or rules")
        if self.notify_customers and (
            self.starts is None or self.ends is None or self.hours is not None
        ):
            raise ValueError(
                "'notify_customers' needs a one-off window: 'starts' and 'ends', no 'hours'"
            )
        if self.ends is None and self.hours is None:
            raise ValueError("set 'ends' or recurring 'hours' (a silence must end)")
        if self.days and self.hours is None:
            raise ValueError("'days' needs 'hours'")
        if self.starts is not None and self.ends is not None:
            if (self.starts.tzinfo is None) != (self.ends.tzinfo is None):
                raise ValueError("give both 'starts' and 'ends' a UTC offset, or neither")
            if self.ends <= self.starts:
                raise ValueError("'ends' must be after 'starts'")
        return self


class InhibitSettings(Model):
    """While a source alert fires (a site gateway offline), matching target alerts on the
    devices that depend on it are recorded but not announced."""

    source_rule: Identifier
    """The monitor whose firing alert inhibits, e.g. ``gateway-offline``."""
    source_kinds: tuple[str, ...] = ()
    """Only source alerts on devices of these kinds (e.g. ``gateway``); empty: any."""
    target_rules: tuple[Identifier, ...] = ()
    """The monitors whose alerts are inhibited; empty: every monitor."""
    scope: Literal["parent", "site"] = "parent"
    """``parent``: the source device is the target's ``parent``; ``site``: any source device
    at the target's site."""


class FlappingSettings(Model):
    """Flapping: a subject that changes state too often is held until it settles."""

    window: Duration = timedelta(hours=1)
    changes: int = Field(6, ge=2)
    """This many firing/resolved changes within ``window`` mark the subject flapping."""
    settle: Duration = timedelta(minutes=30)
    """A flapping alert that kept one state this long ends: resolved (one resolution) or
    firing (announced if it never was)."""


class AlertingSettings(Model):
    """The alert lifecycle: flapping, silences, inhibition and work-order suppression."""

    flapping: FlappingSettings = FlappingSettings()
    silences: tuple[SilenceSettings, ...] = ()
    """Silences and maintenance windows kept in the file (more can be added via the API)."""
    inhibit: tuple[InhibitSettings, ...] = ()
    """Parent-child suppression, e.g. a gateway offline inhibits its devices' offline alerts."""
    expiring_within: Duration = timedelta(hours=1)
    """Silences ending sooner than this are listed as about to expire."""
    work_order_statuses: tuple[str, ...] = ("accepted", "en_route", "on_site")
    """While the device's ticket is in one of these, new alerts attach to it and announce
    nothing new."""
    lateness: Duration = timedelta(0)
    """How late (in event time) a reading may arrive and still be judged in order: readings
    are held until the device's newest reading (or the clock) is this far past them, so a
    burst that arrives shuffled within the bound gives the alerts the sorted one gives,
    at the cost of this much delay. A reading older than what was already judged is
    stored with ``late`` set and drives nothing. 0: judge on arrival."""
