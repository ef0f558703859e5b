from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from forewarn.config.schema import HoursWindow
from forewarn.notifier.policy import deliver_after

LISBON = ZoneInfo("Europe/Lisbon")
NIGHT = HoursWindow.parse("22:00-07:00")
LUNCH = HoursWindow.parse("12:00-14:00")


Wall = tuple[int, int, int, int, int]


def lisbon(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    """A Lisbon wall-clock time, as the aware UTC instant the store would hold."""
    return datetime(year, month, day, hour, minute, tzinfo=LISBON).astimezone(UTC)


def test_it_sends_at_once_outside_quiet_hours() -> None:
    now = lisbon(2026, 11, 25, 15, 0)

    assert deliver_after(now, "Europe/Lisbon", NIGHT, critical=False) == now


def test_it_sends_at_once_without_quiet_hours() -> None:
    now = lisbon(2026, 11, 25, 3, 0)

    assert deliver_after(now, "Europe/Lisbon", None, critical=False) == now


def test_it_sends_a_critical_message_at_once_during_quiet_hours() -> None:
    now = lisbon(2026, 11, 25, 3, 0)

    assert deliver_after(now, "Europe/Lisbon", NIGHT, critical=True) == now


@pytest.mark.parametrize(
    ("local_now", "local_end"),
    [
        ((2026, 11, 25, 22, 0), (2026, 11, 26, 7, 0)),
        ((2026, 11, 25, 23, 59), (2026, 11, 26, 7, 0)),
        ((2026, 11, 26, 0, 0), (2026, 11, 26, 7, 0)),
        ((2026, 11, 26, 6, 59), (2026, 11, 26, 7, 0)),
    ],
)
def test_it_holds_a_message_until_the_night_window_ends_the_next_morning(
    local_now: Wall, local_end: Wall
) -> None:
    assert deliver_after(lisbon(*local_now), "Europe/Lisbon", NIGHT, critical=False) == lisbon(
        *local_end
    )


@pytest.mark.parametrize("local_now", [(2026, 11, 25, 7, 0), (2026, 11, 25, 21, 59)])
def test_it_treats_the_window_as_starting_inclusive_and_ending_exclusive(
    local_now: Wall,
) -> None:
    now = lisbon(*local_now)

    assert deliver_after(now, "Europe/Lisbon", NIGHT, critical=False) == now


@pytest.mark.parametrize(
    ("local_now", "expected"),
    [
        ((2026, 11, 25, 11, 59), (2026, 11, 25, 11, 59)),
        ((2026, 11, 25, 12, 0), (2026, 11, 25, 14, 0)),
        ((2026, 11, 25, 13, 30), (2026, 11, 25, 14, 0)),
        ((2026, 11, 25, 14, 0), (2026, 11, 25, 14, 0)),
        ((2026, 11, 25, 23, 0), (2026, 11, 25, 23, 0)),
    ],
)
def test_it_ends_a_window_within_one_day_on_the_same_day(local_now: Wall, expected: Wall) -> None:
    assert deliver_after(lisbon(*local_now), "Europe/Lisbon", LUNCH, critical=False) == lisbon(
        *expected
    )


def test_it_uses_the_recipients_zone_not_utc() -> None:
    # 23:00 UTC is 06:00 in Bangkok and 23:00 in London: quiet in both, but Bangkok's
    # night ends an hour later and London's eight hours later.
    now = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)

    assert deliver_after(now, "Asia/Bangkok", NIGHT, critical=False) == datetime(
        2026, 11, 26, 0, 0, tzinfo=UTC
    )
    assert deliver_after(now, "Europe/London", NIGHT, critical=False) == datetime(
        2026, 11, 26, 7, 0, tzinfo=UTC
    )


# Lisbon moves from WET (UTC+0) to WEST (UTC+1) at 01:00 UTC on the last Sunday of March
# and back at 01:00 UTC on the last Sunday of October. A night that spans the change is
# an hour shorter or longer, and the window must still end at 07:00 on the wall clock.


@pytest.mark.parametrize(
    ("now", "end"),
    [
        # Spring forward: 23:00 WET on Saturday -> 07:00 WEST on Sunday, 7 hours later.
        (
            datetime(2026, 3, 28, 23, 0, tzinfo=UTC),
            datetime(2026, 3, 29, 6, 0, tzinfo=UTC),
        ),
        # 03:00 WEST on Sunday, after the change.
        (
            datetime(2026, 3, 29, 2, 0, tzinfo=UTC),
            datetime(2026, 3, 29, 6, 0, tzinfo=UTC),
        ),
        # Fall back: 23:00 WEST on Saturday -> 07:00 WET on Sunday, 9 hours later.
        (
            datetime(2026, 10, 24, 22, 0, tzinfo=UTC),
            datetime(2026, 10, 25, 7, 0, tzinfo=UTC),
        ),
        # 01:30 WET on Sunday, the second time the clock shows 01:30.
        (
            datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
            datetime(2026, 10, 25, 7, 0, tzinfo=UTC),
        ),
    ],
)
def test_it_ends_quiet_hours_at_seven_local_time_on_the_days_the_clocks_change(
    now: datetime, end: datetime
) -> None:
    held = deliver_after(now, "Europe/Lisbon", NIGHT, critical=False)

    assert held == end
    assert held.astimezone(LISBON).time() == time(7, 0)


@pytest.mark.parametrize(
    "weekend",
    [datetime(2026, 3, 28, 12, 0, tzinfo=UTC), datetime(2026, 10, 24, 12, 0, tzinfo=UTC)],
)
def test_it_holds_every_message_of_a_dst_weekend_exactly_until_the_first_minute_outside_the_window(
    weekend: datetime,
) -> None:
    # The oracle walks the recipient's clock minute by minute; it knows nothing of
    # windows crossing midnight or of offsets.
    def first_minute_outside(moment: datetime) -> datetime:
        while NIGHT.contains(moment.astimezone(LISBON).time()):
            moment += timedelta(minutes=1)
        return moment

    for quarter in range(4 * 36):
        now = weekend + timedelta(minutes=15 * quarter)
        assert deliver_after(now, "Europe/Lisbon", NIGHT, critical=False) == (
            first_minute_outside(now)
        ), now


def test_it_releases_a_window_that_ends_in_the_spring_gap_once_the_gap_is_over() -> None:
    # On 2026-03-29 Lisbon's clocks jump from 01:00 to 02:00: 01:30 never happens.
    gap_window = HoursWindow.parse("22:00-01:30")
    now = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 00:30 WET, inside the window

    held = deliver_after(now, "Europe/Lisbon", gap_window, critical=False)

    assert held > now
    assert not gap_window.contains(held.astimezone(LISBON).time())
    assert held <= datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # at most 02:30 WEST
