"""What people do to alerts: acknowledge one, silence a device or site for a while (the
console and API call these; they open their own units of work).

``then``, when given, runs in the same unit of work once the action has been done (the
console records the audit row there, so the action and its record commit together)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from forewarn.config.schema import SilenceSettings
from forewarn.monitors import lifecycle, silences
from forewarn.monitors.core import AlertCore, record
from forewarn.monitors.silences import Silence, SilenceStatus
from forewarn.ports import Stores

Then = Callable[[Stores], None] | None

log = logging.getLogger(__name__)


def acknowledge(
    core: AlertCore, alert_id: int, by: str, now: datetime, note: str = "", then: Then = None
) -> bool:
    """Someone is on it: recorded once on an open alert (compare-and-set)."""
    with core.storage.begin() as stores:
        alert = stores.alerts.acknowledge(alert_id, by, now)
        if alert is None:
            return False
        change = lifecycle.acknowledgement(alert, by, note, now)
        record(stores.alerts, lifecycle.Transition(alert, (change,)))
        if then is not None:
            then(stores)
    log.info("alert %s acknowledged by %s", alert_id, by)
    return True


def add_silence(
    core: AlertCore, silence: SilenceSettings, now: datetime, then: Then = None
) -> None:
    """Store a silence created through the API (validated by the same schema as the
    file). Naive times need the silence's ``timezone``."""
    unknown = [r for r in silence.rules if r not in core.rules]
    if unknown:
        raise ValueError(f"unknown monitor(s): {', '.join(unknown)}")
    bounded = Silence.from_settings(silence, source="api")
    starts, ends = silence.starts, silence.ends
    if (starts is not None and starts.tzinfo is None) or (ends is not None and ends.tzinfo is None):
        if silence.timezone is None:
            raise ValueError("give 'starts' and 'ends' a UTC offset, or set 'timezone'")
        starts, ends = bounded.bounds(bounded.zone(silence.timezone))
    with core.storage.begin() as stores:
        stores.alerts.add_silence(replace(bounded, starts=starts, ends=ends), now)
        if then is not None:
            then(stores)


def expire_silence(
    core: AlertCore, silence_id: str, by: str, now: datetime, then: Then = None
) -> bool:
    """End an API silence now (compare-and-set: only one that has not ended yet).

    Silences in the config file are the file's to change; they are never expired here.
    """
    with core.storage.begin() as stores:
        expired = stores.alerts.expire_silence(silence_id, now)
        if expired and then is not None:
            then(stores)
    if expired:
        log.info("silence %s expired by %s", silence_id, by)
    return expired


def extend_silence(
    core: AlertCore, silence_id: str, ends: datetime, by: str, now: datetime
) -> bool:
    """Move a running API silence's end later (a maintenance window that overruns)."""
    with core.storage.begin() as stores:
        extended = stores.alerts.extend_silence(silence_id, ends, now)
    if extended:
        log.info("silence %s extended to %s by %s", silence_id, ends.isoformat(), by)
    return extended


def is_configured_silence(core: AlertCore, silence_id: str) -> bool:
    return any(s.id == silence_id for s in core.config_silences)


def silence_report(core: AlertCore, now: datetime) -> list[SilenceStatus]:
    """Every silence with what it matches, whether it is active and about to expire."""
    with core.storage.begin() as stores:
        found = core.silences(stores, now)
    return silences.silence_report(
        found, core.fleet, core.site_zones, now, core.alerting.expiring_within, core.site_regions
    )
