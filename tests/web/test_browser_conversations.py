"""In headless Chromium: ops answer a customer from the conversation page and the answer
reaches the customer's phone; a technician reads the ticket timeline on a 390 px phone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.fakes.providers import FakeTwilio
from tests.notifier.journey import ANA_TOKEN, MARTA, OPS_TOKEN, Desk, desk
from tests.services import unavailable
from tests.web.live import CHROMIUM, chromium, serving

pytestmark = pytest.mark.browser


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    from tests.notifier.conftest import TWILIO_SENDER

    with FakeTwilio(senders={TWILIO_SENDER}) as fake:
        yield fake


@pytest.fixture
def live(tmp_path: Path, fake_twilio: FakeTwilio) -> Iterator[tuple[Desk, str]]:
    for journey in desk(f"sqlite:///{tmp_path / 'forewarn.db'}", fake_twilio):
        with serving(journey.asgi) as url:
            yield journey, url


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with chromium() as browser:
        yield browser


def test_ops_answer_from_the_console_and_a_technician_reads_the_timeline_on_a_phone(
    live: tuple[Desk, str], browser: Browser
) -> None:
    journey, url = live
    journey.fault("inv-101", "E021")
    journey.send()
    journey.sms(MARTA, "HUMAN my inverter shows E021, is someone coming?")

    page = browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
    page.goto(f"{url}/")
    page.get_by_label("access token").fill(OPS_TOKEN)
    page.get_by_role("button", name="Open").click()
    page.get_by_role("link", name="Conversations", exact=True).click()
    page.locator('#conversations a[href="/conversations/1"]').click()
    expect(page.locator("#conversation-turns")).to_contain_text("is someone coming?")
    expect(page.locator("#timeline")).to_contain_text("grid isolation fault")
    page.get_by_label("your answer").fill("Ana is on her way, she will call you first.")
    page.get_by_role("button", name="Send to the customer").click()
    expect(page.locator("#conversation-turns")).to_contain_text("ops answered by sms")
    expect(page.locator("#owner")).to_have_text("ops")

    journey.send()
    assert journey.texts_to(MARTA)[-1].startswith(
        "forewarn (ops): Ana is on her way, she will call you first."
    )

    phone = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    phone.goto(f"{url}/")
    phone.get_by_label("access token").fill(ANA_TOKEN)
    phone.get_by_role("button", name="Open").click()
    phone.goto(f"{url}/my")
    phone.locator("#job-1 h2 a").click()
    expect(phone).to_have_url(f"{url}/tickets/1#timeline")
    timeline = phone.locator("#timeline")
    expect(timeline).to_contain_text("conversation #1: ops answered by sms")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, f"the ticket page scrolls sideways on a phone ({width} px)"
