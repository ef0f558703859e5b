"""Silences and maintenance windows: which alerts they cover, and when (pure).

A silence matches a device by id, site, model, tag or service area (every given list
must match) and optionally only some rules. A silence with ``notify_customers`` is a
planned-maintenance window: :mod:`forewarn.notifier.maintenance` tells its customers.
It is active between ``starts`` and ``ends`` and, if it has
recurring ``hours``, only during those local hours on the given ``days``.

Recurring hours are a :class:`~forewarn.hours.RecurringHours` in the zone (the silence's
own, else the site's), so a ``01:00-05:00`` window covers 01:00 to 05:00 on the clock on
every day, including the nights the clocks change: three real hours in spring, five in
autumn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from forewarn.config.schema import DeviceSettings, HoursWindow, SilenceSettings
from forewarn.hours import RecurringHours

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Silence:
    """One silence, from the config file or the API."""

    id: str
    source: str
    """``config`` or ``api``."""
    devices: frozenset[str] = frozenset()
    sites: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    """Service areas; see :meth:`covers` (they need the sites' regions to match)."""
    rules: frozenset[str] = frozenset()
    starts: datetime | None = None
    ends: datetime | None = None
    days: frozenset[int] = frozenset()
    """Weekday numbers (Monday 0) on which ``hours`` start."""
    hours: HoursWindow | None = None
    timezone: str | None = None
    comment: str = ""
    created_by: str = ""
    notify_customers: bool = False
    notice_before: timedelta | None = None

    @classmethod
    def from_settings(cls, settings: SilenceSettings, source: str = "config") -> Silence:
        return cls(
            id=settings.id,
            source=source,
            devices=frozenset(settings.devices),
            sites=frozenset(settings.sites),
            models=frozenset(settings.models),
            tags=frozenset(settings.tags),
            regions=frozenset(settings.regions),
            rules=frozenset(settings.rules),
            starts=settings.starts,
            ends=settings.ends,
            days=frozenset(WEEKDAYS.index(d) for d in settings.days),
            hours=settings.hours,
            timezone=settings.timezone,
            comment=settings.comment,
            created_by=settings.created_by,
            notify_customers=settings.notify_customers,
            notice_before=settings.notice_before,
        )

    def covers(self, device: DeviceSettings, site_regions: Mapping[str, str] | None = None) -> bool:
        """Whether the silence covers ``device``; an area silence needs ``site_regions``
        (site id -> region) and covers nothing without it."""
        return (
            (not self.devices or device.id in self.devices)
            and (not self.sites or device.site in self.sites)
            and (not self.models or device.model in self.models)
            and (not self.tags or not self.tags.isdisjoint(device.tags))
            and (
                not self.regions
                or (site_regions is not None and site_regions.get(device.site) in self.regions)
            )
        )

    def in_areas(self, site_regions: Mapping[str, str]) -> Silence:
        """The same silence with its areas turned into their sites (for matchers that see
        only the device)."""
        if not self.regions:
            return self
        in_area = frozenset(s for s, region in site_regions.items() if region in self.regions)
        sites = self.sites & in_area if self.sites else in_area
        # An area with no site left still must match nothing, not everything.
        return replace(self, regions=frozenset(), sites=sites or frozenset({"\x00none"}))

    def matches(self, device: DeviceSettings, rule_id: str) -> bool:
        return self.covers(device) and (not self.rules or rule_id in self.rules)

    def zone(self, site_zone: str) -> ZoneInfo:
        return ZoneInfo(self.timezone or site_zone)

    def bounds(self, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
        """``starts`` and ``ends`` as aware times (naive ones are local to ``zone``)."""
        return _aware(self.starts, zone), _aware(self.ends, zone)

    def active_at(self, now: datetime, zone: ZoneInfo) -> bool:
        """Whether the silence covers the instant ``now`` for a device in ``zone``."""
        starts, ends = self.bounds(zone)
        if starts is not None and now < starts:
            return False
        if ends is not None and now >= ends:
            return False
        if self.hours is None:
            return True
        return RecurringHours(self.hours.start, self.hours.end, zone, self.days).contains(now)

    def expired(self, now: datetime, zone: ZoneInfo) -> bool:
        _, ends = self.bounds(zone)
        return ends is not None and now >= ends


def _aware(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=zone)


@dataclass(frozen=True)
class SilenceStatus:
    """What ops see about one silence."""

    silence: Silence
    matched_devices: int
    active: bool
    ends: datetime | None
    expiring: bool
    """Ends within ``alerting.expiring_within``."""
    expired: bool

    @property
    def matches_nothing(self) -> bool:
        return self.matched_devices == 0


def silence_report(
    silences: list[Silence],
    devices: tuple[DeviceSettings, ...],
    site_zones: dict[str, str],
    now: datetime,
    expiring_within: timedelta,
    site_regions: Mapping[str, str] | None = None,
) -> list[SilenceStatus]:
    """Every silence with the devices it matches, whether it is active now, and whether it
    is about to expire, so a typo (a silence that matches nothing) is visible."""
    report: list[SilenceStatus] = []
    for silence in silences:
        matched = [d for d in devices if silence.covers(d, site_regions)]
        zone = silence.zone(site_zones.get(matched[0].site, "UTC") if matched else "UTC")
        _, ends = silence.bounds(zone)
        active = any(
            silence.active_at(now, silence.zone(site_zones.get(d.site, "UTC"))) for d in matched
        )
        expired = silence.expired(now, zone)
        report.append(
            SilenceStatus(
                silence=silence,
                matched_devices=len(matched),
                active=active,
                ends=ends,
                expiring=ends is not None and not expired and ends - now <= expiring_within,
                expired=expired,
            )
        )
    return report
