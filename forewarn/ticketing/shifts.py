"""Working hours and days off, in the technician's own time zone. Pure: schedule + now in.

A schedule is a list of shifts, each a set of weekdays and a daily window of local time
(``22:00-06:00`` crosses midnight and belongs to the day it starts on). Days off are local
dates; a shift starting on a day off does not happen. An empty schedule means always on
duty (an on-call technician, and every technician configured before shifts existed).

Each shift is a :class:`~forewarn.hours.RecurringHours` in the technician's zone, so a
shift is 08:00-17:00 on the wall clock on both sides of a DST change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from forewarn.hours import WEEKDAYS, RecurringHours

__all__ = ["WEEKDAYS", "Schedule", "Shift", "next_on_duty", "on_duty", "schedule_from"]
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
    starts = [
        start
        for shift in schedule.shifts
        if (start := _hours(schedule, shift).next_start(now, LOOKAHEAD_DAYS)) is not None
    ]
    return min(starts, default=None)


def on_duty(schedule: Schedule, now: datetime) -> bool:
    return next_on_duty(schedule, now) == now


def _hours(schedule: Schedule, shift: Shift) -> RecurringHours:
    return RecurringHours.of(
        shift.start, shift.end, schedule.timezone, shift.days, schedule.days_off
    )


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
