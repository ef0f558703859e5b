"""docs/notifications.md shows the customer-care messages exactly as the templates render
them, in every language (regenerate with ``python -m tests.notifier.journey_docs``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.notifier.journey_docs import LANGUAGES, messages

DOC = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"
ROWS = [(journey, *row) for journey, rows in messages().items() for row in rows]


@pytest.mark.parametrize(("journey", "what", "locale", "body"), ROWS)
def test_the_document_shows_the_message_as_rendered(
    journey: str, what: str, locale: str, body: str
) -> None:
    row = f"| {what} | {locale} | {body.replace('|', chr(92) + '|')} |"
    assert row in DOC.read_text(encoding="utf-8"), (journey, what, locale)


def test_every_journey_shows_a_message_in_every_language() -> None:
    for journey, rows in messages().items():
        assert {locale for _, locale, _ in rows} == set(LANGUAGES), journey
