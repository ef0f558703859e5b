"""Recurring local hours, the one helper behind silences, shifts, quiet hours and working
days: wall-clock windows in an IANA zone that stay right on the nights the clocks move."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from forewarn.hours import RecurringHours

NIGHT = RecurringHours.of(time(0, 30), time(3), "Europe/Lisbon")


def minutes_inside(hours: RecurringHours, start: datetime, span: int) -> list[int]:
    return [m for m in range(span * 60) if hours.contains(start + timedelta(minutes=m))]


def test_it_lasts_ninety_real_minutes_the_night_lisbon_springs_forward() -> None:
    # 2027-03-28 01:00 WET -> 02:00 WEST: 00:30-03:00 on the clock is 00:30-02:00 UTC.
    inside = minutes_inside(NIGHT, datetime(2027, 3, 27, 23, 0, tzinfo=UTC), 6)

    assert (len(inside), inside[0], inside[-1]) == (90, 90, 179)


def test_it_lasts_three_and_a_half_hours_the_night_lisbon_falls_back() -> None:
    # 2026-10-25 02:00 WEST -> 01:00 WET: 00:30 WEST is 23:30 UTC, 03:00 WET is 03:00 UTC.
    inside = minutes_inside(NIGHT, datetime(2026, 10, 24, 22, 0, tzinfo=UTC), 7)

    assert (len(inside), inside[0], inside[-1]) == (210, 90, 299)


def test_a_window_crossing_midnight_belongs_to_the_day_it_starts_on() -> None:
    saturday_nights = RecurringHours.of(time(22), time(2), "America/New_York", ("sat",))
    saturday = datetime(2026, 11, 7, 22, 30, tzinfo=saturday_nights.zone)

    assert saturday_nights.window_at(saturday) == (
        datetime(2026, 11, 8, 3, 0, tzinfo=UTC),
        datetime(2026, 11, 8, 7, 0, tzinfo=UTC),
    )
    assert saturday_nights.contains(saturday + timedelta(hours=3))  # Sunday 01:30
    assert not saturday_nights.contains(saturday - timedelta(days=1))  # Friday night


def test_it_gives_the_next_start_and_skips_the_dates_it_is_told_to() -> None:
    weekdays = RecurringHours.of(
        time(8),
        time(17),
        "Europe/Lisbon",
        ("mon", "tue", "wed", "thu", "fri"),
        frozenset({date(2026, 11, 9)}),
    )
    saturday_night = datetime(2026, 11, 7, 23, 0, tzinfo=UTC)

    assert weekdays.next_start(saturday_night, 21) == datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
    assert weekdays.next_start(datetime(2026, 11, 10, 9, 0, tzinfo=UTC), 21) == datetime(
        2026, 11, 10, 9, 0, tzinfo=UTC
    )


def test_a_whole_local_day_is_midnight_to_midnight_on_the_wall_clock() -> None:
    days = RecurringHours.of(time(0), time(0), "Europe/Lisbon")

    # The autumn Sunday has 25 hours.
    start, end = days.occurrence(date(2026, 10, 25))

    assert end - start == timedelta(hours=25)
    assert days.first_from(date(2026, 10, 25), 1) == (start, end)
