"""The ticket lifecycle and working hours: pure functions, time passed in."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from forewarn.ticketing.lifecycle import IllegalTransition, allowed_actions, transition
from forewarn.ticketing.shifts import Schedule, Shift, next_on_duty, on_duty

WEEKDAYS = frozenset({"mon", "tue", "wed", "thu", "fri"})
LISBON_DAY = Schedule("Europe/Lisbon", (Shift(WEEKDAYS, time(8), time(17)),))


@pytest.mark.parametrize(
    ("path", "end"),
    [
        (["assign", "accept", "depart", "arrive", "resolve", "close"], "closed"),
        (["assign", "decline", "assign", "accept", "no_fault"], "no_fault_found"),
        (["assign", "decline", "requeue"], "open"),
        (["assign", "reassign", "accept", "cancel"], "cancelled"),
        (["assign", "accept", "resolve", "reopen", "assign"], "assigned"),
        (["resolve"], "resolved"),  # a delay case, resolved by ops without a technician
        (["escalate", "resolve"], "resolved"),  # a delay case a person settled
        (["escalate", "cancel"], "cancelled"),
        (["escalate", "close"], "closed"),
        (["escalate", "assign", "accept"], "accepted"),
    ],
)
def test_it_walks_the_lifecycle(path: list[str], end: str) -> None:
    status = "open"
    for action in path:
        status = transition(status, action)

    assert status == end


def test_it_refuses_an_illegal_transition_with_a_clear_error() -> None:
    with pytest.raises(IllegalTransition) as caught:
        transition("closed", "accept")

    assert (
        str(caught.value)
        == "cannot accept a ticket that is closed: it is allowed only from assigned"
    )


def test_it_refuses_an_unknown_action() -> None:
    with pytest.raises(IllegalTransition, match="known actions are assign, reassign"):
        transition("open", "teleport")


def test_it_lists_what_a_status_allows() -> None:
    assert allowed_actions("on_site") == ("resolve", "no_fault", "await_parts", "cancel")
    # Waiting for parts is neither done nor closable: only the parts (or ops) move it.
    assert allowed_actions("awaiting_parts") == ("parts_arrived", "cancel")
    assert allowed_actions("cancelled") == ()
    assert allowed_actions("escalated") == ("assign", "resolve", "close", "cancel")


def test_it_finds_a_technician_on_shift_in_their_own_time_zone() -> None:
    # 08:30 in Lisbon on a Tuesday in winter is 08:30 UTC.
    tuesday = datetime(2026, 11, 3, 8, 30, tzinfo=UTC)

    assert on_duty(LISBON_DAY, tuesday)
    assert not on_duty(LISBON_DAY, tuesday.replace(hour=7))


def test_it_gives_the_start_of_the_next_shift_for_a_weekend_fault() -> None:
    saturday_night = datetime(2026, 11, 7, 23, 0, tzinfo=UTC)

    assert next_on_duty(LISBON_DAY, saturday_night) == datetime(2026, 11, 9, 8, 0, tzinfo=UTC)


def test_it_skips_days_off() -> None:
    on_leave = Schedule(
        "Europe/Lisbon", LISBON_DAY.shifts, frozenset({date(2026, 11, 9), date(2026, 11, 10)})
    )

    start = next_on_duty(on_leave, datetime(2026, 11, 7, 23, 0, tzinfo=UTC))

    assert start == datetime(2026, 11, 11, 8, 0, tzinfo=UTC)


def test_it_keeps_a_night_shift_running_past_midnight() -> None:
    nights = Schedule("Asia/Bangkok", (Shift(frozenset({"fri"}), time(22), time(6)),))
    # Saturday 03:00 in Bangkok (UTC+7) is still Friday's night shift.
    saturday_early = datetime(2026, 11, 6, 20, 0, tzinfo=UTC)

    assert on_duty(nights, saturday_early)


def test_it_follows_the_wall_clock_across_a_dst_change() -> None:
    # Lisbon is UTC+1 in summer: 08:00 local is 07:00 UTC.
    summer_monday = datetime(2026, 7, 6, 7, 30, tzinfo=UTC)

    assert on_duty(LISBON_DAY, summer_monday)
    assert next_on_duty(LISBON_DAY, datetime(2026, 7, 6, 6, 0, tzinfo=UTC)) == datetime(
        2026, 7, 6, 7, 0, tzinfo=UTC
    )


def test_it_treats_a_technician_without_shifts_as_always_on_duty() -> None:
    assert on_duty(Schedule(), datetime(2026, 11, 8, 3, 0, tzinfo=UTC))
