"""Working hours and days off, in the technician's own time zone. Pure: schedule + now in.

A schedule is a list of shifts, each a set of weekdays and a daily window of local time
(``22:00-06:00`` crosses midnight and belongs to the day it starts on). Days off are local
dates; a shift starting on a day off does not happen. An empty schedule means always on
duty (an on-call technician, and every technician configured before shifts existed).

Local times are resolved through ``zoneinfo``, so a shift is 08:00-17:00 on the wall clock
on both sides of a DST change (and a shift start that falls into the spring-forward gap
begins at the first valid moment after it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LOOKAHEAD_DAYS = 21
"""How far ahead :func:`next_on_duty` looks (three weeks covers any holiday plan)."""


@dataclass(frozen=True)
class Shift:
    days: frozenset[str]
    """Weekday names (``mon`` ... ``sun``) the shift starts on."""
    start: time
    end: time
    """End of the shift; at or before ``start`` means it ends the next day."""


@dataclass(frozen=True)
class Schedule:
    timezone: str = "UTC"
    shifts: tuple[Shift, ...] = ()
    days_off: frozenset[date] = frozenset()

    @property
    def always(self) -> bool:
        return not self.shifts


def next_on_duty(schedule: Schedule, now: datetime) -> datetime | None:
    """``now`` if the technician is on shift, else the start of their next shift (UTC);
    None if there is none within :data:`LOOKAHEAD_DAYS`."""
    if schedule.always:
        return now
    best: datetime | None = None
    for start, end in _windows(schedule, now):
        if start <= now < end:
            return now
        if start > now and (best is None or start < best):
            best = start
    return best


def on_duty(schedule: Schedule, now: datetime) -> bool:
    return next_on_duty(schedule, now) == now


def _windows(schedule: Schedule, now: datetime) -> Iterator[tuple[datetime, datetime]]:
    zone = ZoneInfo(schedule.timezone)
    today = now.astimezone(zone).date()
    # Yesterday too: a night shift that started yesterday may still be running.
    for offset in range(-1, LOOKAHEAD_DAYS):
        day = today + timedelta(days=offset)
        if day in schedule.days_off:
            continue
        weekday = WEEKDAYS[day.weekday()]
        for shift in schedule.shifts:
            if weekday not in shift.days:
                continue
            end_day = day if shift.end > shift.start else day + timedelta(days=1)
            yield (
                _utc(datetime.combine(day, shift.start), zone),
                _utc(datetime.combine(end_day, shift.end), zone),
            )


def _utc(local: datetime, zone: ZoneInfo) -> datetime:
    # fold=0 picks the first of an ambiguous (fall-back) time; a time in the spring-forward
    # gap normalises to just after it through the UTC round trip.
    return local.replace(tzinfo=zone).astimezone(UTC)


def schedule_from(timezone: str, shifts: list[dict[str, object]], days_off: list[str]) -> Schedule:
    """The schedule as stored on a technician row (``08:00-17:00`` windows, ISO dates)."""
    parsed = []
    for shift in shifts:
        start, end = str(shift["hours"]).split("-")
        days = shift.get("days") or ()
        parsed.append(
            Shift(
                days=frozenset(str(d) for d in days)
                if isinstance(days, list | tuple)
                else frozenset(),
                start=time.fromisoformat(start),
                end=time.fromisoformat(end),
            )
        )
    return Schedule(timezone, tuple(parsed), frozenset(date.fromisoformat(d) for d in days_off))
