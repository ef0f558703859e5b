from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from forewarn.web.app import create_app
from tests.services import unavailable
from tests.web.conftest import NOW, OPS_TOKEN, FixedClock, make_config
from tests.web.live import CHROMIUM, chromium, serving
from tests.web.scenario import Scenario

pytestmark = pytest.mark.browser


@pytest.fixture
def console_url(store: sessionmaker[Session], scenario: Scenario) -> Iterator[str]:
    """The console over the scenario, served by uvicorn on a free port, with a token."""
    app = create_app(make_config({"FOREWARN_API_TOKEN": OPS_TOKEN}), store, FixedClock(NOW))
    with serving(app) as url:
        yield url


@pytest.fixture
def browser_page(console_url: str) -> Iterator[Page]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        page = context.new_page()
        try:
            yield page
        finally:
            context.close()


def test_it_walks_from_the_dashboard_to_the_ticket_in_a_real_browser(
    console_url: str, browser_page: Page, scenario: Scenario
) -> None:
    page = browser_page

    page.goto(f"{console_url}/")
    expect(page.get_by_role("heading", name="Access token needed")).to_be_visible()
    page.get_by_label("access token").fill(OPS_TOKEN)
    page.get_by_role("button", name="Open").click()

    # The token went into an HttpOnly cookie and out of the address bar.
    expect(page).to_have_url(f"{console_url}/")
    cookies = page.context.cookies()
    assert [(c["name"], c["httpOnly"]) for c in cookies] == [("forewarn_session", True)]
    expect(page.locator("#card-devices")).to_contain_text("silent 2")
    expect(page.locator("#card-alerts")).to_contain_text("critical 1")

    page.get_by_role("link", name=f"#{scenario.ticket_id}", exact=True).first.click()

    expect(page).to_have_url(f"{console_url}/tickets/{scenario.ticket_id}")
    expect(page.locator("#technician")).to_have_text("Rui Almeida")
    dispatch = page.locator("#dispatch")
    expect(dispatch).to_contain_text("Chosen: Rui Almeida")
    expect(dispatch.locator("tr.chosen")).to_contain_text("Rui Almeida")
    expect(page.locator("#excluded")).to_contain_text("lacks skill 'inverter'")
    notices = page.locator("#notifications tbody tr")
    expect(notices).to_have_count(3)
    expect(notices.nth(1)).to_contain_text("+35191****678")
    expect(notices.nth(1)).to_contain_text("delivered")
    expect(notices.nth(2)).to_contain_text("sent")
    # The pills are coloured by meaning: delivered reads as good news.
    colour = notices.nth(1).locator(".pill.ok").evaluate("e => getComputedStyle(e).color")
    assert colour == "rgb(30, 123, 70)"

    page.get_by_role("link", name="Notifications", exact=True).click()
    page.get_by_role("link", name="failed 1").click()
    expect(page).to_have_url(f"{console_url}/notifications?status=failed")
    expect(page.locator("main tbody tr")).to_have_count(1)
    expect(page.locator("main tbody")).to_contain_text("+35193****890")
