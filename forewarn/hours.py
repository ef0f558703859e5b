"""Recurring hours: a daily window of wall-clock time in one IANA zone (pure).

One helper for everything that repeats by the local clock: silences and maintenance
windows, technicians' shifts, customers' quiet hours, working days. A window such as
``22:00-06:00`` crosses midnight and belongs to the day it starts on; ``00:00-00:00`` is
the whole day. ``days`` limits the weekdays it starts on, ``skip`` removes local dates
(days off, holidays).

Each occurrence is turned into an interval of real time by resolving its local start and
end through ``zoneinfo``, so on the nights the clocks change a ``00:30-03:00`` window in
Lisbon lasts ninety real minutes in spring and three and a half hours in autumn, and the
window still ends at 03:00 on the wall clock. A local time that occurs twice (fall-back)
means its first occurrence; one that falls into the spring-forward gap is read with the
offset before the change (``01:30`` in Lisbon's 01:00→02:00 gap is 02:30 after it).
Both are ``zoneinfo``'s ``fold=0``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday names in ``date.weekday()`` order."""


@dataclass(frozen=True)
class RecurringHours:
    """A daily local-time window in ``zone``, on ``days`` (all when empty), but not on
    the local dates in ``skip``."""

    start: time
    end: time
    """At or before ``start``: the window ends the next day."""
    zone: ZoneInfo
    days: frozenset[int] = frozenset()
    """Weekday numbers (Monday 0) on which the window starts; empty: every day."""
    skip: frozenset[date] = frozenset()
    """Local dates on which the window does not start."""

    @classmethod
    def of(
        cls,
        start: time,
        end: time,
        zone: str | ZoneInfo,
        days: frozenset[str] | frozenset[int] | tuple[str, ...] = frozenset(),
        skip: frozenset[date] = frozenset(),
    ) -> RecurringHours:
        """Build from weekday names (``mon`` ...) or numbers and a zone name."""
        numbers = frozenset(d if isinstance(d, int) else WEEKDAYS.index(d) for d in days)
        tz = zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)
        return cls(start, end, tz, numbers, skip)

    def starts_on(self, day: date) -> bool:
        """Whether an occurrence starts on local date ``day``."""
        return (not self.days or day.weekday() in self.days) and day not in self.skip

    def occurrence(self, day: date) -> tuple[datetime, datetime]:
        """The occurrence starting on local date ``day`` as UTC instants (ignores ``days``
        and ``skip``)."""
        end_day = day if self.end > self.start else day + timedelta(days=1)
        return (
            _utc(datetime.combine(day, self.start), self.zone),
            _utc(datetime.combine(end_day, self.end), self.zone),
        )

    def occurrences(self, since: datetime, days: int) -> Iterator[tuple[datetime, datetime]]:
        """Every occurrence starting on the local day before ``since`` (it may still be
        running) through ``days`` days after it, in order, as UTC instants."""
        today = since.astimezone(self.zone).date()
        for offset in range(-1, days):
            day = today + timedelta(days=offset)
            if self.starts_on(day):
                yield self.occurrence(day)

    def first_from(self, day: date, within_days: int) -> tuple[datetime, datetime] | None:
        """The first occurrence starting on local date ``day`` or later (within
        ``within_days`` days)."""
        for offset in range(within_days):
            if self.starts_on(later := day + timedelta(days=offset)):
                return self.occurrence(later)
        return None

    def window_at(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The occurrence that holds the instant ``now`` (start inclusive, end exclusive)."""
        for start, end in self.occurrences(now, 1):
            if start <= now < end:
                return start, end
        return None

    def contains(self, now: datetime) -> bool:
        return self.window_at(now) is not None

    def next_start(self, now: datetime, within_days: int) -> datetime | None:
        """``now`` inside an occurrence, else the next start within ``within_days``."""
        for start, end in self.occurrences(now, within_days):
            if start <= now < end:
                return now
            if start > now:
                return start
        return None


def _utc(local: datetime, zone: ZoneInfo) -> datetime:
    # fold=0: the first of an ambiguous (fall-back) time; a gap time with the old offset.
    return local.replace(tzinfo=zone).astimezone(UTC)
