"""Visit windows a technician can keep: planned from their shifts, their other visits and
the travel between them, inside the SLA. Pure: schedule, visits and ``now`` in.

A window is an *arrival* window (the customer is told "between 08:00 and 10:00"). Windows
are cut from each shift occurrence on the technician's wall clock (``08:00-17:00`` in
two-hour slots gives 08-10, 10-12, 12-14, 14-16, and 16-17 is too short; a shift already
under way is cut from the first whole hour that leaves the notice), so they stay on the
hour on both sides of a DST change (:mod:`forewarn.hours`). A window can be kept when:

* it starts at least ``notice`` after now and ends by the SLA due time;
* it overlaps none of the technician's booked visits (an offer holds nothing: two
  customers may be offered the same hours, and the first to book them has them);
* the technician can get there: leaving home base at the start of the shift, or the
  previous visit at the end of its window, and driving at ``speed_kmh`` in a straight
  line, they arrive before the window ends; and from there they still reach their next
  visit before its window ends.

The first ``options`` windows that can be kept are proposed; "other times" continues
after the last window offered.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from forewarn.hours import RecurringHours
from forewarn.ticketing.shifts import LOOKAHEAD_DAYS, Schedule, Shift

Point = tuple[float, float]


@dataclass(frozen=True)
class Planning:
    """How windows are cut and offered (``ticketing.appointments`` in the config)."""

    slot: timedelta = timedelta(hours=2)
    options: int = 3
    speed_kmh: float = 40.0
    notice: timedelta = timedelta(hours=1)
    """The earliest window starts at least this long after now."""
    visiting_hours: tuple[time, time] = (time(8), time(20))
    """Windows lie within these local hours at the customer's site (nobody is offered a
    visit at 3 a.m. because an on-call technician is on duty then)."""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Visit:
    """Another visit of the same technician: where and when they will be busy."""

    start: datetime
    end: datetime
    at: Point | None = None


@dataclass(frozen=True)
class Plan:
    """The windows that can be kept, or why there are none."""

    windows: tuple[Window, ...]
    reason: str = ""


def distance_km(a: Point, b: Point) -> float:
    """Great-circle distance (haversine), in kilometres."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def travel(a: Point | None, b: Point | None, speed_kmh: float) -> timedelta:
    """Driving time between two places; zero when either is unknown."""
    if a is None or b is None or speed_kmh <= 0:
        return timedelta(0)
    return timedelta(hours=distance_km(a, b) / speed_kmh)


def plan(
    schedule: Schedule,
    visits: Sequence[Visit],
    *,
    home: Point | None,
    site: Point | None,
    site_zone: str,
    now: datetime,
    due: datetime | None,
    planning: Planning,
    after: datetime | None = None,
) -> Plan:
    """The first ``planning.options`` windows to offer (starting at ``after`` or later
    when asking for other times), or an empty plan with the reason."""
    earliest = now + planning.notice
    if after is not None:
        earliest = max(earliest, after)
    horizon = due if due is not None else now + timedelta(days=LOOKAHEAD_DAYS)
    if horizon <= earliest:
        return Plan((), "the SLA is due before any visit could start")
    busy = sorted(visits, key=lambda v: v.start)
    found: list[Window] = []
    for shift_start, shift_end in _shifts(schedule, earliest, horizon):
        for window in _slots(schedule, shift_start, shift_end, planning.slot, earliest):
            if window.start < earliest or window.end > horizon:
                continue
            if not _visiting(window, planning.visiting_hours, site_zone):
                continue
            if _keepable(window, shift_start, busy, home, site, planning.speed_kmh):
                found.append(window)
                if len(found) == planning.options:
                    return Plan(tuple(found))
    if found:
        return Plan(tuple(found))
    slot = f"{planning.slot.total_seconds() / 3600:g} h"
    if after is not None:
        return Plan((), f"no further {slot} window before the SLA is due")
    return Plan((), f"no {slot} window in the technician's shifts before the SLA is due")


def _shifts(
    schedule: Schedule, since: datetime, until: datetime
) -> list[tuple[datetime, datetime]]:
    """Every shift occurrence overlapping ``since``..``until``, in order (UTC); an
    always-on technician's "shifts" are their local days."""
    days = min(LOOKAHEAD_DAYS, (until - since).days + 2)
    shifts = schedule.shifts or (Shift(frozenset(), time(0), time(0)),)
    found = set()
    for shift in shifts:
        hours = RecurringHours.of(
            shift.start, shift.end, schedule.timezone, shift.days, schedule.days_off
        )
        for start, end in hours.occurrences(since, days):
            if end > since and start < until:
                found.add((start, end))
    return sorted(found)


def _slots(
    schedule: Schedule, start: datetime, end: datetime, slot: timedelta, earliest: datetime
) -> list[Window]:
    """Windows of ``slot`` cut from one shift on the technician's wall clock, from the
    shift's start or, in a shift already under way, from the first whole hour after
    ``earliest``."""
    zone = ZoneInfo(schedule.timezone)
    cursor = start.astimezone(zone).replace(tzinfo=None)
    if earliest > start:
        first = earliest.astimezone(zone).replace(tzinfo=None)
        if first.minute or first.second or first.microsecond:
            first = first.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        cursor = max(cursor, first)
    windows = []
    while (closes := _utc(cursor + slot, zone)) <= end:
        windows.append(Window(_utc(cursor, zone), closes))
        cursor += slot
    return windows


def _visiting(window: Window, hours: tuple[time, time], zone: str) -> bool:
    """Whether the window lies within the customer's visiting hours, in the site's zone."""
    tz = ZoneInfo(zone)
    first, last = window.start.astimezone(tz), window.end.astimezone(tz)
    opens, closes = hours
    if first.date() != last.date() and not (last.time() == time(0) and closes == time(0)):
        return False
    return first.time() >= opens and (closes == time(0) or last.time() <= closes)


def _utc(local: datetime, zone: ZoneInfo) -> datetime:
    # fold=0, as forewarn.hours reads every wall-clock time.
    return local.replace(tzinfo=zone).astimezone(UTC)


def _keepable(
    window: Window,
    shift_start: datetime,
    busy: Sequence[Visit],
    home: Point | None,
    site: Point | None,
    speed_kmh: float,
) -> bool:
    if any(v.start < window.end and window.start < v.end for v in busy):
        return False
    before = [v for v in busy if shift_start <= v.end <= window.start]
    after = [v for v in busy if v.start >= window.end]
    leave, origin = (before[-1].end, before[-1].at) if before else (shift_start, home)
    if leave + travel(origin, site, speed_kmh) > window.end:
        return False  # cannot get there before the window closes
    if after:
        following = after[0]
        return window.end + travel(site, following.at, speed_kmh) <= following.end
    return True


def can_keep(
    window: Window,
    schedule: Schedule,
    visits: Sequence[Visit],
    *,
    home: Point | None,
    site: Point | None,
    speed_kmh: float,
) -> bool:
    """Whether a technician can keep an already agreed window (a job handed to them):
    inside one of their shifts, clear of their other visits, reachable in time."""
    for start, end in _shifts(schedule, window.start - timedelta(days=1), window.end):
        if start <= window.start and window.end <= end:
            busy = sorted(visits, key=lambda v: v.start)
            return _keepable(window, start, busy, home, site, speed_kmh)
    return False
