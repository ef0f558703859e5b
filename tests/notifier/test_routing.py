"""Keyword routing of free text, and the pure decisions behind self-service and
maintenance notices (the journeys test them end to end; these pin the edges)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from forewarn.config.schema import DEFAULT_ROUTING
from forewarn.notifier.maintenance import Told, due_phase
from forewarn.notifier.routing import route
from forewarn.ticketing.self_service import decide

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "locale", "queue"),
    [
        ("Why was I charged twice on my invoice?", "en", "billing"),
        ("The billion-watt question: is it broken?", "en", "technical"),  # not "bill"
        ("Quero remarcar a visita do técnico", "pt", "appointment"),
        ("我的快递还没到", "zh-Hans", "delivery"),
        ("我要投訴你們的服務", "zh-Hant", "complaint"),
        ("บิลเดือนนี้แพงผิดปกติ", "th", "billing"),
        ("my invoice is wrong", "th", "billing"),  # a Thai customer writing English
        ("hello?", "en", "general"),
    ],
)
def test_free_text_goes_to_the_queue_its_keywords_name(text: str, locale: str, queue: str) -> None:
    assert route(text, locale, DEFAULT_ROUTING, "general").queue == queue


def test_the_customers_own_language_is_tried_first() -> None:
    found = route("visita fatura", "pt", DEFAULT_ROUTING, "general")
    assert (found.queue, found.keyword, found.language) == ("billing", "fatura", "pt")


def test_a_window_ended_before_anyone_was_told_sends_nothing() -> None:
    never = Told(announced=False, announced_ends=None, over=False)
    starts, ends = NOW - timedelta(hours=3), NOW - timedelta(hours=1)
    assert due_phase(starts, ends, timedelta(hours=24), never, NOW) == "skip"


def test_a_window_created_late_is_announced_at_once_and_extended_once() -> None:
    never = Told(announced=False, announced_ends=None, over=False)
    starts, ends = NOW + timedelta(hours=1), NOW + timedelta(hours=3)
    assert due_phase(starts, ends, timedelta(hours=24), never, NOW) == "before"
    told = Told(announced=True, announced_ends=ends, over=False)
    assert due_phase(starts, ends, timedelta(hours=24), told, NOW) is None
    later = ends + timedelta(hours=2)
    assert due_phase(starts, later, timedelta(hours=24), told, NOW) == "extended"
    assert due_phase(starts, later, timedelta(hours=24), told, later) == "over"


@pytest.mark.parametrize(
    ("status", "answer", "breaching", "ticket", "now", "expected"),
    [
        ("offered", "fixed", False, "assigned", NOW, ("resolved", "fixed")),
        ("offered", "fixed", True, "assigned", NOW, ("fixed", "checking")),
        ("fixed", None, True, "assigned", NOW, ("fixed", None)),
        ("fixed", None, True, "assigned", NOW + timedelta(hours=1), ("kept", "still_breaching")),
        ("fixed", None, False, "assigned", NOW, ("resolved", "fixed")),
        ("offered", "fixed", False, "en_route", NOW, ("kept", "under_way")),
        ("offered", "not_fixed", False, "assigned", NOW, ("kept", "not_fixed")),
        ("offered", None, True, "assigned", NOW + timedelta(hours=3), ("kept", "no_answer")),
        ("offered", None, True, "assigned", NOW, ("offered", None)),
    ],
)
def test_self_service_decides_from_the_answer_the_readings_and_the_clock(
    status: str,
    answer: str | None,
    breaching: bool,
    ticket: str,
    now: datetime,
    expected: tuple[str, str | None],
) -> None:
    decision = decide(
        status=status,
        answer=answer,  # type: ignore[arg-type]
        breaching=breaching,
        ticket_status=ticket,
        now=now,
        answer_by=NOW + timedelta(hours=2),
        settle_by=NOW + timedelta(minutes=30) if status == "fixed" else None,
    )
    assert (decision.status, decision.outcome) == expected
