"""Every event renders in every shipped language, with no English left in it."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest

from forewarn.notifier.examples import example_context
from forewarn.notifier.render import Renderer, channels_of, check_templates, sms_costs

SHIPPED = ("en", "zh-Hans", "zh-Hant", "th")
TRANSLATED = ("zh-Hans", "zh-Hant", "th")
# Words a translated message keeps on purpose: the brand, the SMS keywords carriers and
# our webhook read (they must be typed exactly so), and the technicians' commands.
KEEP = {
    "forewarn",
    "STOP",
    "START",
    "HELP",
    "HUMAN",
    "FIXED",
    "NOT",
    "ACK",
    "ENROUTE",
    "DONE",
    "NOFAULT",
    "DECLINE",
    "SMS",
}
renderer = Renderer()


def data_words(value: Any) -> set[str]:
    """Latin words that come from the data (names, models, ids), not from the template."""
    if isinstance(value, dict):
        return set().union(*(data_words(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(data_words(v) for v in value)) if value else set()
    return set(re.findall(r"[A-Za-z]+", str(value)))


def english_left(text: str, allowed: set[str]) -> set[str]:
    text = unescape(re.sub(r"<[^>]+>", " ", text))  # HTML: the words, not the markup
    return {w for w in re.findall(r"[A-Za-z]{2,}", text) if w not in allowed}


@pytest.mark.parametrize("event", renderer.events())
def test_every_event_ships_in_every_language(event: str) -> None:
    assert set(SHIPPED) <= set(renderer.locales(event)), event


@pytest.mark.parametrize("locale", TRANSLATED)
@pytest.mark.parametrize("event", renderer.events())
def test_a_translated_message_has_no_english_in_it(event: str, locale: str) -> None:
    context = example_context()
    allowed = KEEP | data_words(context)
    for channel in channels_of(renderer, event):
        rendered = renderer.render(event, channel, locale, context)
        for part in (rendered.body, rendered.subject or "", rendered.html or ""):
            assert english_left(part, allowed) == set(), (event, locale, channel, part)


def test_product_kinds_are_translated_not_shown_as_keys() -> None:
    context = example_context()
    body = renderer.render("fault_notice", "sms", "th", context).body
    assert "inverter" not in body and "อินเวอร์เตอร์" in body


def test_the_english_check_catches_a_leftover_word() -> None:
    assert english_left("您好 please 回复", KEEP) == {"please"}


def test_every_template_renders_and_no_sms_shows_an_address_or_serial() -> None:
    assert check_templates(renderer) == []


def test_the_sms_cost_of_each_template_is_known() -> None:
    costs = {(c.event, c.locale): c for c in sms_costs(renderer)}
    thai = costs[("fault_notice", "th")]
    assert thai.encoding == "UCS-2"  # Thai never fits GSM-7: 70 characters a segment
    assert thai.segments == -(-thai.characters // 67)
    assert costs[("reply_stop", "en")].segments == 1


CARE_EVENTS = (
    "self_service_offer",
    "self_service_result",
    "maintenance_notice",
    "conversation_reply",
    "conversation_escalated",
    "reply_human",
)


@pytest.mark.parametrize("event", CARE_EVENTS)
def test_the_customer_care_messages_ship_in_portuguese_too(event: str) -> None:
    assert {*SHIPPED, "pt"} <= set(renderer.locales(event)), event
