"""docs/notifications.md shows the visit and closure messages exactly as they render."""

from __future__ import annotations

from pathlib import Path

from tests.notifier.visit_docs import markdown, rendered

DOC = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"


def test_the_documented_messages_are_the_rendered_ones() -> None:
    assert markdown() in DOC.read_text(encoding="utf-8")


def test_every_journey_message_is_shown_in_every_language() -> None:
    titles = {title for _, title, _, _ in rendered()}
    for title in titles:
        languages = {locale for _, t, locale, _ in rendered() if t == title}
        assert languages in ({"en", "pt", "zh-Hans", "zh-Hant", "th"}, {"en"}), title
