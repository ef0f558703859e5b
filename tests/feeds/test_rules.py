"""The order rules, pure: facts + learned transit times + now -> verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from forewarn.config import parse_config
from forewarn.monitors.orders import OrderFacts, WorkingCalendar, evaluate_order, needs_person
from forewarn.monitors.transit import TransitBook, TransitTimes, learn_transit

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # a Monday
RULES = parse_config(
    """
delays:
  rules:
    - {id: not-handed-over, kind: milestone_overdue, milestone: handed_to_carrier,
       after: approved, within: 48h}
    - {id: at-risk, kind: promise_at_risk, percentile: 80, min_samples: 10}
    - {id: exception, kind: carrier_exception, codes: {DMG: parcel damaged}}
    - {id: passed, kind: promise_passed}
""",
    {},
).settings.delays.rules


def days(n: float) -> timedelta:
    return timedelta(days=n)


def book_with_handoff_transit(day_counts: list[float]) -> TransitBook:
    return TransitBook(
        learn_transit((None, None, "handed_to_carrier", d * 86400) for d in day_counts)
    )


def test_it_fires_when_a_milestone_is_not_reached_in_time_and_says_when_to_look_again() -> None:
    order = OrderFacts("o1", {"placed": T0, "approved": T0}, promised=T0 + days(20))
    early = evaluate_order(RULES, order, TransitBook(), T0 + days(1))
    assert early.findings == ()
    assert early.next_check == T0 + days(2)
    late = evaluate_order(RULES, order, TransitBook(), T0 + days(2))
    assert [f.rule_id for f in late.findings] == ["not-handed-over"]
    assert late.findings[0].since == T0 + days(2)


def test_it_ignores_milestones_stamped_after_now_so_a_replay_cannot_see_the_future() -> None:
    order = OrderFacts(
        "o1", {"approved": T0, "handed_to_carrier": T0 + days(3)}, promised=T0 + days(20)
    )
    verdict = evaluate_order(RULES, order, TransitBook(), T0 + days(2))
    assert [f.rule_id for f in verdict.findings] == ["not-handed-over"]
    after = evaluate_order(RULES, order, TransitBook(), T0 + days(3))
    assert after.findings == ()


def test_a_delivered_or_canceled_order_has_no_findings() -> None:
    order = OrderFacts("o1", {"approved": T0, "delivered": T0 + days(9)}, promised=T0 + days(5))
    assert evaluate_order(RULES, order, TransitBook(), T0 + days(10)).status == "delivered"
    canceled = OrderFacts("o2", {"approved": T0}, canceled_at=T0 + days(1))
    verdict = evaluate_order(RULES, canceled, TransitBook(), T0 + days(30))
    assert verdict.status == "canceled"
    assert verdict.findings == ()


def test_promise_at_risk_compares_with_parcels_that_already_took_as_long() -> None:
    # Most parcels arrive 2 days after hand-off; one in five takes 6 to 8 days.
    book = book_with_handoff_transit([2.0] * 80 + [6.0 + i / 10 for i in range(20)])
    order = OrderFacts(
        "o1",
        {"approved": T0 - days(1), "handed_to_carrier": T0},
        promised=T0 + days(5),
    )
    fresh = evaluate_order(RULES, order, book, T0 + timedelta(hours=1))
    assert fresh.findings == ()
    assert fresh.next_check is not None
    assert T0 + days(2) <= fresh.next_check <= T0 + days(2.1)
    # Not delivered after 3 days: it is one of the slow ones, and those miss the promise.
    stuck = evaluate_order(RULES, order, book, T0 + days(3))
    assert [f.rule_id for f in stuck.findings] == ["at-risk"]
    assert stuck.estimate is not None
    assert stuck.estimate > order.promised  # type: ignore[operator]


def test_promise_at_risk_stays_quiet_without_enough_history() -> None:
    book = book_with_handoff_transit([9.0] * 5)
    order = OrderFacts("o1", {"handed_to_carrier": T0}, promised=T0 + days(2))
    assert evaluate_order(RULES, order, book, T0 + days(1)).findings == ()


def test_a_listed_carrier_exception_fires_and_an_unlisted_one_does_not() -> None:
    facts = {"approved": T0, "handed_to_carrier": T0}
    damaged = OrderFacts("o1", facts, exception_code="DMG", exception_at=T0 + days(1))
    verdict = evaluate_order(RULES, damaged, TransitBook(), T0 + days(1))
    assert [f.summary for f in verdict.findings] == ["carrier exception DMG: parcel damaged"]
    other = OrderFacts("o2", facts, exception_code="XYZ", exception_at=T0 + days(1))
    assert evaluate_order(RULES, other, TransitBook(), T0 + days(1)).findings == ()


def test_promise_passed_fires_at_the_promised_moment() -> None:
    order = OrderFacts("o1", {"approved": T0, "handed_to_carrier": T0}, promised=T0 + days(3))
    assert evaluate_order(RULES, order, TransitBook(), T0 + days(2)).next_check == T0 + days(3)
    verdict = evaluate_order(RULES, order, TransitBook(), T0 + days(3))
    assert [f.rule_id for f in verdict.findings] == ["passed"]


def test_an_exception_on_friday_goes_to_a_person_at_the_end_of_monday() -> None:
    calendar = WorkingCalendar(timezone="America/Sao_Paulo")
    friday = datetime(2026, 11, 6, 15, 0, tzinfo=UTC)
    order = OrderFacts(
        "o1", {"handed_to_carrier": friday}, exception_code="ADDR", exception_at=friday
    )
    reason, check = needs_person(order, calendar, days(3), friday + days(1))
    assert reason is None
    # Monday ends at midnight São Paulo time (UTC-3).
    assert check == datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
    reason, _ = needs_person(order, calendar, days(3), check)
    assert reason is not None
    assert "ADDR" in reason


def test_the_at_risk_rule_holds_at_the_moment_it_said_to_look_again() -> None:
    # Transit times that are no whole number of microseconds: the moment of the crossing
    # must not be rounded down to just before it (judged then, the order looked on time
    # and no later check was set, so it waited for new data).
    times = TransitTimes(100, tuple(86400 * (2 + p / 20) for p in range(99)))
    book = TransitBook({("*", "*", "handed_to_carrier"): times})
    missed = []
    for n in range(300):
        handed = T0 + timedelta(minutes=37 * n, microseconds=487_656 + 7919 * n)
        promised = handed + days(3 + n % 5)
        order = OrderFacts("o1", {"handed_to_carrier": handed}, promised=promised)
        check = evaluate_order(RULES, order, book, handed).next_check
        if check is None:
            continue
        later = evaluate_order(RULES, order, book, check)
        if "at-risk" not in [f.rule_id for f in later.findings] and not (
            later.next_check is not None and later.next_check > check
        ):
            missed.append(n)
    assert missed == []
