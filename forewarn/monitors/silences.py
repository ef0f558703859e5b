"""Silences and maintenance windows: which alerts they cover, and when (pure).

A silence matches a device by id, site, model or tag (every given list must match) and
optionally only some rules. It is active between ``starts`` and ``ends`` and, if it has
recurring ``hours``, only during those local hours on the given ``days``.

Recurring hours are a :class:`~forewarn.hours.RecurringHours` in the zone (the silence's
own, else the site's), so a ``01:00-05:00`` window covers 01:00 to 05:00 on the clock on
every day, including the nights the clocks change: three real hours in spring, five in
autumn.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    rules: frozenset[str] = frozenset()
    starts: datetime | None = None
    ends: datetime | None = None
    days: frozenset[int] = frozenset()
    """Weekday numbers (Monday 0) on which ``hours`` start."""
    hours: HoursWindow | None = None
    timezone: str | None = None
    comment: str = ""
    created_by: str = ""

    @classmethod
    def from_settings(cls, settings: SilenceSettings, source: str = "config") -> Silence:
        return cls(
            id=settings.id,
            source=source,
            devices=frozenset(settings.devices),
            sites=frozenset(settings.sites),
            models=frozenset(settings.models),
            tags=frozenset(settings.tags),
            rules=frozenset(settings.rules),
            starts=settings.starts,
            ends=settings.ends,
            days=frozenset(WEEKDAYS.index(d) for d in settings.days),
            hours=settings.hours,
            timezone=settings.timezone,
            comment=settings.comment,
            created_by=settings.created_by,
        )

    def covers(self, device: DeviceSettings) -> bool:
        return (
            (not self.devices or device.id in self.devices)
            and (not self.sites or device.site in self.sites)
            and (not self.models or device.model in self.models)
            and (not self.tags or not self.tags.isdisjoint(device.tags))
        )

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
) -> list[SilenceStatus]:
    """Every silence with the devices it matches, whether it is active now, and whether it
    is about to expire, so a typo (a silence that matches nothing) is visible."""
    report: list[SilenceStatus] = []
    for silence in silences:
        matched = [d for d in devices if silence.covers(d)]
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
