"""Planned-maintenance notices: the customers of a maintenance window are told before it,
when it is extended, and when it is over.

A planned-maintenance window is a silence with ``notify_customers`` (from the config
file, ``POST /api/silences`` or the console form): it suppresses the alerts of the
devices it covers (site, area or model) as every silence does, and this module tells the
customers who own those devices. :func:`due_phase` (pure) decides what is due; the
leader job ``maintenance-notices`` (:func:`announce`) queues one ``maintenance_notice``
per customer and phase, in their language and zone, with the zone named:

* ``before``: ``notice_before`` (default ``care.maintenance_notice_before``) ahead of the
  start, or at once for a window created later than that (a late notice beats none);
* ``extended``: the window's end moved later after the customers were told (an API
  ``extend``, or the file edited);
* ``over``: the end has passed (or ops ended it early), once.

What was told is a ``maintenance_notices`` row per silence, and each message's outbox key
names the phase, so a second leader (or a rerun) queues nothing twice. Customer quiet
hours apply as to any non-critical message: choose ``notice_before`` longer than a night.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.orm import Session

from forewarn.config.schema import DeviceSettings, SiteSettings
from forewarn.monitors.silences import Silence
from forewarn.notifier.outbox import customer_recipient, notify
from forewarn.store.care import MaintenanceNotice
from forewarn.store.models import Customer

log = logging.getLogger(__name__)

EVENT = "maintenance_notice"
Phase = Literal["before", "extended", "over"]


@dataclass(frozen=True)
class Told:
    """What the customers of one window were told so far."""

    announced: bool
    announced_ends: datetime | None
    over: bool


def due_phase(
    starts: datetime, ends: datetime, notice_before: timedelta, told: Told, now: datetime
) -> Phase | Literal["skip"] | None:
    """What the customers of a window must be told at ``now`` (pure); ``skip``: the window
    ended before anyone was told, so nothing is (an all-clear for a window nobody heard of
    would only confuse)."""
    if told.over:
        return None
    if now >= ends:
        return "over" if told.announced else "skip"
    if not told.announced:
        return "before" if now >= starts - notice_before else None
    if told.announced_ends is not None and ends > told.announced_ends:
        return "extended"
    return None


@dataclass(frozen=True)
class Audience:
    """One customer of a window and the names of their sites it covers."""

    customer_id: str
    sites: tuple[str, ...]


def audience(
    silence: Silence,
    fleet: Sequence[DeviceSettings],
    sites: Mapping[str, SiteSettings],
) -> list[Audience]:
    """Every customer owning a device the window covers, with the site names."""
    regions = {site_id: site.region for site_id, site in sites.items()}
    by_customer: dict[str, set[str]] = {}
    for device in fleet:
        site = sites.get(device.site)
        if site is None or not silence.covers(device, regions):
            continue
        by_customer.setdefault(site.customer, set()).add(site.name)
    return [Audience(c, tuple(sorted(names))) for c, names in sorted(by_customer.items())]


def announce(
    session: Session,
    now: datetime,
    silences: Sequence[Silence],
    fleet: Sequence[DeviceSettings],
    sites: Mapping[str, SiteSettings],
    default_before: timedelta,
) -> int:
    """Queue every maintenance notice due at ``now``; returns how many were queued."""
    queued = 0
    for silence in silences:
        if not silence.notify_customers:
            continue
        customers = audience(silence, fleet, sites)
        first = _first_site(fleet, sites, silence)
        zone = silence.zone(sites[first].timezone if first else "UTC")
        starts, ends = silence.bounds(zone)
        if starts is None or ends is None:
            continue
        state = session.get(MaintenanceNotice, silence.id, with_for_update=True)
        if state is None:
            state = MaintenanceNotice(silence_id=silence.id, extensions=0, customers=0)
            session.add(state)
        told = Told(state.announced_at is not None, state.announced_ends, state.over_at is not None)
        phase = due_phase(starts, ends, silence.notice_before or default_before, told, now)
        if phase is None:
            continue
        if phase == "skip":
            state.over_at = now
            continue
        if phase == "before":
            state.announced_at, state.announced_starts = now, starts
        if phase == "extended":
            state.extensions += 1
        if phase == "over":
            state.over_at = now
        state.announced_ends = ends
        state.customers = len(customers)
        for one in customers:
            queued += _notify(session, silence, one, phase, starts, ends, state.extensions, now)
        log.info(
            "maintenance %s: %s notice queued for %d customer(s)",
            silence.id,
            phase,
            len(customers),
        )
    return queued


def _first_site(
    fleet: Sequence[DeviceSettings], sites: Mapping[str, SiteSettings], silence: Silence
) -> str | None:
    """The site whose zone the window's naive times are in (its first covered device's)."""
    regions = {site_id: site.region for site_id, site in sites.items()}
    for device in fleet:
        if device.site in sites and silence.covers(device, regions):
            return device.site
    return None


def _notify(
    session: Session,
    silence: Silence,
    one: Audience,
    phase: Phase,
    starts: datetime,
    ends: datetime,
    extensions: int,
    now: datetime,
) -> int:
    customer = session.get(Customer, one.customer_id)
    if customer is None:
        return 0
    suffix = f":{extensions}" if phase == "extended" else ""
    rows = notify(
        session,
        key=f"maintenance:{silence.id}:{phase}{suffix}",
        event=EVENT,
        recipient=customer_recipient(customer),
        context={
            "customer": {"name": customer.name},
            "maintenance": {
                "id": silence.id,
                "phase": phase,
                "starts": starts.isoformat(),
                "ends": ends.isoformat(),
                "sites": list(one.sites),
            },
        },
        now=now,
    )
    return len(rows)


def example_maintenance_context() -> dict[str, Any]:
    """Keys of the maintenance template, for ``forewarn check`` and the docs."""
    return {
        "maintenance": {
            "id": "grid-works-cascais",
            "phase": "before",
            "starts": "2026-11-25T23:00:00+00:00",
            "ends": "2026-11-26T03:00:00+00:00",
            "sites": ["Silva home"],
        }
    }
